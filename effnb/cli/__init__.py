"""The ``effnb`` command line: one module per command's back end, ``commands`` parses and dispatches."""
from effnb.cli.commands import main

__all__ = ["main"]
