"""The network as data: stage rows like the seed's architecture table, one builder, and baselines A, B and C.

C is the seed's "Selected Architecture" table. The seed describes A and B only in words (A deeper
with fewer channels, B medium depth with larger kernels, all "roughly 50,000 parameters"); their
specs here are ours.

A network is a ``conv`` stem, MBConv stages and a ``conv`` 1x1 head, followed by an extra batch norm,
global average pooling and a linear classifier (the seed: "Stage 6 is followed with an additional batch
normalisation, global average pooling and a dense layer").

Each stage is one row, written in a short self-labelling form like timm's architecture strings:
``mbconv_r2_k3_s1_e6_c26`` is an MBConv stage of 2 layers (``r``), kernel 3 (``k``), stride 1 (``s``),
expansion ratio t = 6 (``e``) and 26 output channels (``c``); ``conv_r1_k7_s2_c12`` is a plain
convolution (``e`` omitted); ``fused_r1_k3_s2_e1_c16`` is EfficientNetV2's Fused-MBConv (an option, see
:func:`fused_early`; the seed's networks have none). ``r`` and ``e`` default to 1; :meth:`StageSpec.parse` reads the form and
``str(stage)`` writes it.

Stride reading: the seed's table lists one "Resolution" per stage. As in Table 1 of
the EfficientNet paper it is read as the stage's *input* resolution, so a stage
strides when the next row's resolution is smaller. For baseline C at 64 px:
stem s2 (64->32), stage 2 s2 (32->16), stages 3-4 s1, stage 5 s2 (16->8), head s1.
The stride is applied in the first layer of a stage. Convolutions use padding k//2,
so a stride-s layer maps n pixels to ceil(n / s).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

_FIELDS = {"r": "layers", "k": "kernel", "s": "stride", "e": "expansion", "c": "channels"}


@dataclass(frozen=True)
class StageSpec:
    """One stage (a row of the seed's table): ``layers`` repeats of an operator; the stride applies to the first."""

    op: Literal["conv", "mbconv", "fused"]
    kernel: int
    stride: int
    channels: int
    layers: int = 1
    expansion: int = 1  # MBConv expansion ratio t (1 for conv)

    def __post_init__(self) -> None:
        if self.op not in ("conv", "mbconv", "fused"):
            raise ValueError(f"unknown op {self.op!r}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {self.kernel}")
        if min(self.stride, self.channels, self.layers, self.expansion) < 1:
            raise ValueError(f"stride, channels, layers and expansion must be >= 1: {self}")
        if self.op == "conv" and self.expansion != 1:
            raise ValueError(f"a conv stage has no expansion ratio: {self}")

    @classmethod
    def parse(cls, row: str) -> StageSpec:
        """Read the short form (``mbconv_r2_k3_s1_e6_c26``, ``conv_r1_k7_s2_c12``; see the module docstring)."""
        op, *parts = row.split("_")
        fields = {}
        for part in parts:
            match = re.fullmatch(r"([rksec])(\d+)", part)
            if match is None or _FIELDS[match[1]] in fields:
                raise ValueError(f"cannot read stage {row!r}: bad or repeated field {part!r}")
            fields[_FIELDS[match[1]]] = int(match[2])
        missing = {"kernel", "stride", "channels"} - set(fields)
        if missing:
            raise ValueError(f"cannot read stage {row!r}: missing {', '.join(sorted(missing))}")
        return cls(op, **fields)  # type: ignore[arg-type]

    def __str__(self) -> str:
        expansion = f"_e{self.expansion}" if self.op != "conv" else ""
        return f"{self.op}_r{self.layers}_k{self.kernel}_s{self.stride}{expansion}_c{self.channels}"


@dataclass(frozen=True)
class Scaling:
    """How a spec was compound-scaled from ``base``: depth by alpha**phi, width by beta**phi, resolution by gamma**phi."""

    base: str
    alpha: float
    beta: float
    gamma: float
    phi: float


@dataclass(frozen=True)
class NetSpec:
    """A whole network: conv stem, MBConv stages, conv head, the training resolution, and how it was scaled."""

    name: str
    stages: tuple[StageSpec, ...]
    resolution: int = 64  # training input resolution (k_train)
    num_classes: int = 2
    se_ratio: float = 0.0  # squeeze-excitation (off for the seed's baselines)
    drop_connect: float = 0.0  # stochastic depth rate (off for the seed's baselines)
    scaling: Scaling | None = None  # set by effnb.nn.scaling.scale

    def __post_init__(self) -> None:
        ops = [s.op for s in self.stages]
        if len(ops) < 3 or ops[0] != "conv" or ops[-1] != "conv" or "conv" in ops[1:-1]:
            raise ValueError("stages must be a conv stem, one or more mbconv or fused stages, a conv head")
        if self.stages[0].layers != 1 or self.stages[-1].layers != 1:
            raise ValueError("the conv stem and head have exactly one layer")

    @classmethod
    def from_rows(cls, name: str, *rows: str, **options: Any) -> NetSpec:
        """A spec from its stage rows in the short form, e.g. ``NetSpec.from_rows("C", "conv_r1_k7_s2_c12", ...)``."""
        return cls(name, tuple(StageSpec.parse(row) for row in rows), **options)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict (what checkpoints and notebook outputs store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetSpec:
        """Inverse of :meth:`to_dict` (accepts stages as lists of dicts)."""
        scaling = d.get("scaling")
        return cls(**{**d, "stages": tuple(StageSpec(**s) for s in d["stages"]),
                      "scaling": Scaling(**scaling) if scaling else None})

    def content(self) -> dict[str, Any]:
        """What determines the network and its training input: :meth:`to_dict` without the name and scaling record."""
        return {k: v for k, v in self.to_dict().items() if k not in ("name", "scaling")}

    def table(self) -> list[dict[str, Any]]:
        """One row per stage in the layout of the seed's architecture table."""
        rows, res = [], self.resolution
        for i, s in enumerate(self.stages, start=1):
            rows.append(
                {
                    "stage": i,
                    "operator": {"conv": "Conv2D", "mbconv": f"MBConv t={s.expansion}",
                                 "fused": f"Fused-MBConv t={s.expansion}"}[s.op],
                    "resolution": f"{res} x {res}",
                    "kernel": f"{s.kernel} x {s.kernel}",
                    "channels": s.channels,
                    "layers": s.layers,
                    "stride": s.stride,
                }
            )
            res = math.ceil(res / s.stride)
        return rows


class MBConv(nn.Module):
    """Inverted residual block: ``expand`` 1x1 (absent when t = 1), ``depthwise`` kxk, ``se`` (optional), ``project`` 1x1.

    Each part is a ``torchvision.ops.Conv2dNormActivation`` (conv without bias, batch norm, SiLU; ``project`` has
    no activation). The identity skip exists only when ``stride == 1`` and ``cin == cout``; drop-connect
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
        self.expand = (Conv2dNormActivation(cin, hidden, 1, activation_layer=nn.SiLU) if expansion != 1
                       else nn.Identity())
        self.depthwise = Conv2dNormActivation(hidden, hidden, kernel, stride, groups=hidden, activation_layer=nn.SiLU)
        self.se = (SqueezeExcitation(hidden, max(1, int(cin * se_ratio)), activation=nn.SiLU) if se_ratio > 0
                   else nn.Identity())
        self.project = Conv2dNormActivation(hidden, cout, 1, activation_layer=None)
        self.use_residual = stride == 1 and cin == cout
        drops = self.use_residual and drop_connect > 0
        self.drop = StochasticDepth(drop_connect, "row") if drops else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + self.drop(out) if self.use_residual else out


class FusedMBConv(nn.Module):
    """EfficientNetV2's Fused-MBConv: MBConv with its 1x1 expansion and kxk depthwise convolution fused into one
    full kxk convolution (``expand``), then ``project`` 1x1; with t = 1, the kxk convolution alone, cin -> cout,
    with its activation (as ``torchvision.models.efficientnet.FusedMBConv``, but with the exact ``cin * t`` hidden
    channels of :class:`MBConv` and no squeeze-excitation). Depthwise convolutions run poorly on CPUs; early,
    high-resolution stages with few channels are where a full convolution costs least. Skip and drop-connect as
    :class:`MBConv`.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, expansion: int = 1,
                 drop_connect: float = 0.0) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = Conv2dNormActivation(cin, cout if expansion == 1 else hidden, kernel, stride,
                                           activation_layer=nn.SiLU)
        self.project = (nn.Identity() if expansion == 1 else
                        Conv2dNormActivation(hidden, cout, 1, activation_layer=None))
        self.use_residual = stride == 1 and cin == cout
        drops = self.use_residual and drop_connect > 0
        self.drop = StochasticDepth(drop_connect, "row") if drops else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.expand(x))
        return x + self.drop(out) if self.use_residual else out


class EffNet(nn.Module):
    """Network built from a :class:`NetSpec`; ``forward`` returns logits (softmax is in the loss).

    ``stages.stage1`` .. ``stages.stageN`` are the rows of the spec (stem, one ``nn.Sequential`` of
    :class:`MBConv` or :class:`FusedMBConv` blocks per middle stage, head). Block ``i`` of ``n`` gets drop-connect rate ``spec.drop_connect * i / n`` (linear in
    depth, as in EfficientNet).
    """

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        first, *mid, last = spec.stages
        n_blocks = sum(s.layers for s in mid)
        stages: OrderedDict[str, nn.Module] = OrderedDict(
            stage1=Conv2dNormActivation(3, first.channels, first.kernel, first.stride, activation_layer=nn.SiLU))
        done, cin = 0, first.channels
        for i, s in enumerate(mid, start=2):
            blocks = []
            for j in range(s.layers):
                rate = spec.drop_connect * done / n_blocks
                stride = s.stride if j == 0 else 1
                blocks.append(FusedMBConv(cin, s.channels, s.kernel, stride, s.expansion, rate) if s.op == "fused" else
                              MBConv(cin, s.channels, s.kernel, stride, s.expansion, spec.se_ratio, rate))
                cin, done = s.channels, done + 1
            stages[f"stage{i}"] = nn.Sequential(*blocks)
        stages[f"stage{len(spec.stages)}"] = Conv2dNormActivation(cin, last.channels, last.kernel, last.stride,
                                                                   activation_layer=nn.SiLU)
        self.stages = nn.Sequential(stages)
        self.final_bn = nn.BatchNorm2d(last.channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last.channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_bn(self.stages(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


def fused_early(spec: NetSpec, stages: int = 1) -> NetSpec:
    """``spec`` with its first ``stages`` MBConv stages made Fused-MBConv (EfficientNetV2's early stages), named
    ``<name>-fused<stages>``; kernels, strides, channels, layers and expansions unchanged."""
    mid = [i for i, s in enumerate(spec.stages) if s.op != "conv"]
    if not 1 <= stages <= len(mid):
        raise ValueError(f"{spec.name} has {len(mid)} MBConv stages: cannot fuse {stages}")
    new = tuple(replace(s, op="fused") if i in mid[:stages] else s for i, s in enumerate(spec.stages))
    return replace(spec, name=f"{spec.name}-fused{stages}", stages=new)


BASELINES: dict[str, NetSpec] = {
    # deeper, fewer channels, small kernels
    "A": NetSpec.from_rows("A", "conv_r1_k3_s2_c8", "mbconv_r1_k3_s2_e1_c12", "mbconv_r2_k3_s1_e6_c14",
                           "mbconv_r3_k3_s1_e6_c18", "mbconv_r4_k3_s2_e6_c22", "conv_r1_k1_s1_c32"),
    # medium depth, larger kernels, medium channels
    "B": NetSpec.from_rows("B", "conv_r1_k7_s2_c10", "mbconv_r1_k5_s2_e1_c14", "mbconv_r2_k7_s1_e6_c16",
                           "mbconv_r2_k5_s1_e6_c20", "mbconv_r2_k5_s2_e6_c24", "conv_r1_k1_s1_c32"),
    # the seed's selected architecture (its table): shallower, wider, small kernels
    "C": NetSpec.from_rows("C", "conv_r1_k7_s2_c12", "mbconv_r1_k3_s2_e1_c16", "mbconv_r1_k5_s1_e6_c22",
                           "mbconv_r2_k3_s1_e6_c26", "mbconv_r1_k3_s2_e6_c32", "conv_r1_k1_s1_c40"),
}
