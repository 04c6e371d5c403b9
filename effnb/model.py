"""Baseline networks: stage specs, the MBConv block, and the baselines A, B and C.

C is the seed's "Selected Architecture" table. The seed describes A and B only in words (A deeper
with fewer channels, B medium depth with larger kernels, all "roughly 50,000 parameters"); their
specs here are ours.

A network is six stages: a ``conv`` stem, MBConv stages, and a ``conv`` 1x1 head,
followed by an extra batch norm, global average pooling and a linear classifier.

Stride reading: the seed's table lists one "Resolution" per stage. As in Table 1 of
the EfficientNet paper it is read as the stage's *input* resolution, so a stage
strides when the next row's resolution is smaller. For baseline C at 64 px:
stem s2 (64->32), stage 2 s2 (32->16), stages 3-4 s1, stage 5 s2 (16->8), head s1.
The stride is applied in the first layer of a stage. Convolutions use padding k//2,
so a stride-s layer maps n pixels to ceil(n / s).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation, StochasticDepth


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``layers`` repeats of an operator; the stride applies to the first."""

    op: Literal["conv", "mbconv"]
    kernel: int
    stride: int
    channels: int
    layers: int = 1
    expansion: int = 1  # MBConv expansion ratio t (ignored for conv)

    def __post_init__(self) -> None:
        if self.op not in ("conv", "mbconv"):
            raise ValueError(f"unknown op {self.op!r}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {self.kernel}")
        if min(self.stride, self.channels, self.layers, self.expansion) < 1:
            raise ValueError(f"stride, channels, layers and expansion must be >= 1: {self}")


@dataclass(frozen=True)
class NetSpec:
    """A whole network: conv stem, MBConv stages, conv head, plus training resolution."""

    name: str
    stages: tuple[StageSpec, ...]
    resolution: int = 64  # training input resolution
    num_classes: int = 2
    se_ratio: float = 0.0  # squeeze-excitation (off for the seed's baselines)
    drop_connect: float = 0.0  # stochastic depth rate (off for the seed's baselines)

    def __post_init__(self) -> None:
        ops = [s.op for s in self.stages]
        if len(ops) < 3 or ops[0] != "conv" or ops[-1] != "conv" or "conv" in ops[1:-1]:
            raise ValueError("stages must be a conv stem, one or more mbconv stages, a conv head")
        if self.stages[0].layers != 1 or self.stages[-1].layers != 1:
            raise ValueError("the conv stem and head have exactly one layer")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetSpec:
        """Inverse of :meth:`to_dict` (accepts stages as lists of dicts)."""
        return cls(**{**d, "stages": tuple(StageSpec(**s) for s in d["stages"])})

    def table(self) -> list[dict[str, Any]]:
        """One row per stage in the layout of the seed's architecture table."""
        rows, res = [], self.resolution
        for i, s in enumerate(self.stages, start=1):
            rows.append(
                {
                    "stage": i,
                    "operator": "Conv2D" if s.op == "conv" else f"MBConv t={s.expansion}",
                    "resolution": f"{res} x {res}",
                    "kernel": f"{s.kernel} x {s.kernel}",
                    "channels": s.channels,
                    "layers": s.layers,
                    "stride": s.stride,
                }
            )
            res = math.ceil(res / s.stride)
        return rows


def conv_bn(
    cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (no bias, padding k//2) + BatchNorm, optionally followed by SiLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1, depthwise kxk, optional SE, project 1x1.

    The identity skip exists only when ``stride == 1`` and ``cin == cout``; drop-connect
    (per-sample stochastic depth) is applied to the residual branch when > 0.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        expansion: int = 1,
        se_ratio: float = 0.0,
        drop_connect: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn(cin, hidden, 1))
        layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden))
        if se_ratio > 0:
            squeeze = max(1, int(cin * se_ratio))
            layers.append(SqueezeExcitation(hidden, squeeze, activation=nn.SiLU))
        layers.append(conv_bn(hidden, cout, 1, act=False))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout
        drops = self.use_residual and drop_connect > 0
        self.drop = StochasticDepth(drop_connect, "row") if drops else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + self.drop(out) if self.use_residual else out


class EffNet(nn.Module):
    """Network built from a :class:`NetSpec`; ``forward`` returns logits (softmax is in the loss).

    Block ``i`` of ``n`` gets drop-connect rate ``spec.drop_connect * i / n`` (linear in
    depth, as in EfficientNet).
    """

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        first, *mid, last = spec.stages
        self.stem = conv_bn(3, first.channels, first.kernel, first.stride)
        n_blocks = sum(s.layers for s in mid)
        blocks, cin = [], first.channels
        for s in mid:
            for j in range(s.layers):
                rate = spec.drop_connect * len(blocks) / n_blocks
                stride = s.stride if j == 0 else 1
                blocks.append(
                    MBConv(cin, s.channels, s.kernel, stride, s.expansion, spec.se_ratio, rate)
                )
                cin = s.channels
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(cin, last.channels, last.kernel, last.stride)
        self.final_bn = nn.BatchNorm2d(last.channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last.channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_bn(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(self.pool(x), 1))


def build_model(spec: NetSpec) -> EffNet:
    """Instantiate the network described by ``spec``."""
    return EffNet(spec)


def _mb(kernel: int, stride: int, channels: int, layers: int = 1, t: int = 6) -> StageSpec:
    return StageSpec("mbconv", kernel, stride, channels, layers, t)


BASELINES: dict[str, NetSpec] = {
    # deeper, fewer channels, small kernels
    "A": NetSpec(
        "A",
        (
            StageSpec("conv", 3, 2, 8),
            _mb(3, 2, 12, t=1),
            _mb(3, 1, 14, 2),
            _mb(3, 1, 18, 3),
            _mb(3, 2, 22, 4),
            StageSpec("conv", 1, 1, 32),
        ),
    ),
    # medium depth, larger kernels, medium channels
    "B": NetSpec(
        "B",
        (
            StageSpec("conv", 7, 2, 10),
            _mb(5, 2, 14, t=1),
            _mb(7, 1, 16, 2),
            _mb(5, 1, 20, 2),
            _mb(5, 2, 24, 2),
            StageSpec("conv", 1, 1, 32),
        ),
    ),
    # the seed's selected architecture: shallower, wider, small kernels
    "C": NetSpec(
        "C",
        (
            StageSpec("conv", 7, 2, 12),
            _mb(3, 2, 16, t=1),
            _mb(5, 1, 22),
            _mb(3, 1, 26, 2),
            _mb(3, 2, 32),
            StageSpec("conv", 1, 1, 40),
        ),
    ),
}
