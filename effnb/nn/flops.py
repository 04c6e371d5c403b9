"""Parameter and FLOP counts, and the FLOPs-vs-phi table of a scaled family."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effnb.nn.model import EffNet, NetSpec
from effnb.nn.scaling import constraint, scale


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(
    model_or_spec: nn.Module | NetSpec, resolution: int | None = None, in_channels: int = 3
) -> int:
    """Forward FLOPs for one ``resolution`` x ``resolution`` image.

    Measured with ``torch.utils.flop_counter.FlopCounterMode``, which counts a
    multiply-add as 2 FLOPs: the EfficientNet paper's "FLOPs" (multiply-adds) are
    this number / 2. Runs in eval mode without grad; the resolution defaults to the
    spec's training resolution (required for a plain module).
    """
    model = EffNet(model_or_spec) if isinstance(model_or_spec, NetSpec) else model_or_spec
    if resolution is None:
        if not isinstance(model, EffNet):
            raise ValueError("resolution is required for a module without a NetSpec")
        resolution = model.spec.resolution
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, in_channels, resolution, resolution, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops()


def scaling_table(spec: NetSpec, alpha: float, beta: float, gamma: float, max_phi: int = 4) -> pd.DataFrame:
    """The scaled family for phi = 0 .. ``max_phi``, one row per phi (the index): resolution, layers and channels per
    stage, params, forward MFLOPs (multiply-add = 2) and their growth, rounded to 3 decimals.

    ``flops_ratio`` is relative to phi = 0, ``expected`` is ``constraint(alpha, beta, gamma)**phi``
    (about 2**phi) and ``deviation`` is ``flops_ratio / expected - 1``.
    """
    base = count_flops(spec)
    rows = []
    for phi in range(max_phi + 1):
        s = scale(spec, alpha, beta, gamma, phi)
        model = EffNet(s)
        flops = count_flops(model)
        expected = constraint(alpha, beta, gamma) ** phi
        rows.append({"phi": phi, "resolution": s.resolution, "layers": [st.layers for st in s.stages],
                     "channels": [st.channels for st in s.stages], "params": count_params(model),
                     "MFLOPs (2/MAC)": flops / 1e6, "flops_ratio": flops / base, "expected": expected,
                     "deviation": flops / base / expected - 1})
    return pd.DataFrame(rows).set_index("phi").round(3)
