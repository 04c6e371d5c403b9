"""Device choice: CUDA, then Apple MPS, then CPU, unless one is forced."""
from __future__ import annotations

import os

import torch

DEVICE_ENV = "EFFNB_DEVICE"


def pick_device(force: str | None = None) -> torch.device:
    """The device to train on: ``force`` (or ``$EFFNB_DEVICE``) if given, else CUDA, MPS, CPU."""
    force = force or os.environ.get(DEVICE_ENV) or None
    if force:
        device = torch.device(force)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {force!r} was forced but CUDA is not available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device {force!r} was forced but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
