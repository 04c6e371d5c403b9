"""Device choice: CUDA, then Apple MPS, then CPU, unless one is forced."""
from __future__ import annotations

import os
import platform

import torch

DEVICE_ENV = "EFFNB_DEVICE"


class DeviceError(ValueError):
    """A forced device that is unknown or not available here (one-line message)."""


def _forced(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {name!r} was forced but CUDA is not available")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {name!r} was forced but there are only {count} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {name!r} was forced but MPS is not available")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}: use cpu, cuda, cuda:N or mps")
    return device


def pick_device(force: str | None = None) -> torch.device:
    """The device to train on: ``force`` (or ``$EFFNB_DEVICE``) if given, else CUDA, MPS, CPU.

    A forced device that is unknown or unavailable is a :class:`DeviceError`: check it before long work.
    """
    force = force or os.environ.get(DEVICE_ENV) or None
    if force:
        return _forced(force)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows): speeds differ by CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or platform.machine())
