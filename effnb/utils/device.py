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


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            block = f.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}


def cpu_peak_gflops(cores: int | None = None) -> tuple[float, str]:
    """An estimate of this CPU's fp32 peak in GFLOP/s and how it was derived, from ``/proc/cpuinfo``.

    Peak = cores x FMA units x fp32 lanes per unit x 2 (a fused multiply-add is 2 FLOPs) x clock. The ISA sets the
    lanes: AVX-512 on Intel 16 per unit; AMD (Zen 4) runs a 512-bit op as two 256-bit halves, so 8 as with AVX2/FMA;
    4 without FMA. Two FMA units per core (Intel since Haswell, AMD since Zen) is assumed, not read, and the clock is
    the ``cpu MHz`` the kernel reports (a virtual machine's nominal clock; turbo can be higher): an estimate.
    """
    info = _cpuinfo()
    cores = cores or torch.get_num_threads()
    flags = set(info.get("flags", "").split())
    intel = info.get("vendor_id") == "GenuineIntel"
    lanes, isa = ((16, "AVX-512") if "avx512f" in flags and intel else
                  (8, "AVX-512 as 2 x 256 bit" if "avx512f" in flags else "AVX2/FMA") if "fma" in flags else
                  (4, "SSE"))
    ghz = float(info.get("cpu MHz", "0") or 0) / 1000
    peak = cores * 2 * lanes * 2 * ghz
    return peak, (f"{cores} cores x 2 FMA units (assumed) x {lanes} fp32 lanes ({isa}) x 2 FLOPs x {ghz:.2f} GHz "
                  f"(cpu MHz in /proc/cpuinfo) = {peak:.0f} GFLOP/s, an estimate")
