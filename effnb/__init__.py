"""effnb: compound scaling and FixRes test-resolution fine-tuning on a small compute budget."""

__version__ = "0.1.0"
