import json

import pytest
import torch
from torch import nn

from effnb.nn.flops import count_flops, count_params
from effnb.nn.model import (
    BASELINES,
    EffNet,
    FusedMBConv,
    MBConv,
    NetSpec,
    StageSpec,
    fused_early,
)
from effnb.nn.scaling import scale

SEED_TABLE_C = [
    # stage, operator, input resolution, kernel, channels, layers, stride (see model docstring)
    (1, "Conv2D", "64 x 64", "7 x 7", 12, 1, 2),
    (2, "MBConv t=1", "32 x 32", "3 x 3", 16, 1, 2),
    (3, "MBConv t=6", "16 x 16", "5 x 5", 22, 1, 1),
    (4, "MBConv t=6", "16 x 16", "3 x 3", 26, 2, 1),
    (5, "MBConv t=6", "16 x 16", "3 x 3", 32, 1, 2),
    (6, "Conv2D", "8 x 8", "1 x 1", 40, 1, 1),
]


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("res", [64, 97, 128])
def test_output_shape(name: str, res: int) -> None:
    model = EffNet(BASELINES[name]).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, res, res))
    assert out.shape == (3, 2)
    assert torch.isfinite(out).all()


def test_c_spec_matches_seed_table() -> None:
    rows = BASELINES["C"].table()
    keys = ("stage", "operator", "resolution", "kernel", "channels", "layers", "stride")
    assert [tuple(r[k] for k in keys) for r in rows] == SEED_TABLE_C


def test_stage_short_form_reads_and_writes_every_field() -> None:
    stage = StageSpec.parse("mbconv_r2_k3_s1_e6_c26")
    assert stage == StageSpec("mbconv", kernel=3, stride=1, channels=26, layers=2, expansion=6)
    assert StageSpec.parse(str(stage)) == stage
    assert StageSpec.parse("conv_k7_s2_c12") == StageSpec("conv", kernel=7, stride=2, channels=12)
    assert str(StageSpec("conv", kernel=7, stride=2, channels=12)) == "conv_r1_k7_s2_c12"


@pytest.mark.parametrize("row", ["mbconv_k3_s1", "mbconv_k3_s1_c8_k5", "mbconv_k3_s1_c8_x2", "conv_k3_s1_e6_c8",
                                 "pool_k3_s1_c8"])
def test_stage_short_form_refuses_bad_rows(row: str) -> None:
    with pytest.raises(ValueError):
        StageSpec.parse(row)


def test_c_modules_match_seed_table() -> None:
    model = EffNet(BASELINES["C"])
    stem = model.stages.stage1[0]
    assert (stem.in_channels, stem.out_channels) == (3, 12)
    assert (stem.kernel_size, stem.stride) == ((7, 7), (2, 2))
    got = []
    for name in ("stage2", "stage3", "stage4", "stage5"):
        for block in getattr(model.stages, name):
            depthwise = block.depthwise[0]
            t = 1 if isinstance(block.expand, nn.Identity) else block.expand[0].out_channels // block.expand[0].in_channels
            got.append((name, depthwise.kernel_size[0], depthwise.stride[0], t, block.project[0].out_channels))
    # (stage, kernel, stride, t, channels) per MBConv layer
    assert got == [("stage2", 3, 2, 1, 16), ("stage3", 5, 1, 6, 22), ("stage4", 3, 1, 6, 26), ("stage4", 3, 1, 6, 26),
                   ("stage5", 3, 2, 6, 32)]
    head = model.stages.stage6[0]
    assert (head.in_channels, head.out_channels) == (32, 40)
    assert (head.kernel_size, head.stride) == ((1, 1), (1, 1))
    assert isinstance(model.final_bn, nn.BatchNorm2d) and model.final_bn.num_features == 40
    assert model.classifier.in_features == 40 and model.classifier.out_features == 2


def test_c_spatial_size_after_each_stage() -> None:
    model = EffNet(BASELINES["C"]).eval()
    sizes: list[int] = []
    for m in model.stages:
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert sizes == [32, 16, 16, 16, 8, 8]


# Parameters and forward FLOPs (multiply-add = 2) at the training resolution, measured on the networks as
# first built (conv+BN+SiLU by hand, MBConv as nn.Sequential): the named-parts version must build the same nets.
# The seed's table gives C about 40k parameters (just under its "roughly 50,000").
SIZES = {"A": (50_590, 14_350_464), "B": (52_630, 21_006_464), "C": (39_578, 18_646_688),
         "C-se": (46_058, 18_658_496), "C-a1.2-b1.05-g1.23-phi2": (59_384, 67_594_316)}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_param_and_flop_counts_are_those_of_the_original_networks(name: str) -> None:
    specs = {**BASELINES, "C-se": NetSpec.from_dict({**BASELINES["C"].to_dict(), "se_ratio": 0.25}),
             "C-a1.2-b1.05-g1.23-phi2": scale(BASELINES["C"], 1.2, 1.05, 1.23, 2)}
    spec = specs[name]
    assert (count_params(EffNet(spec)), count_flops(spec)) == SIZES[name]


def test_baseline_design_intent() -> None:
    depth = {n: sum(s.layers for s in spec.stages) for n, spec in BASELINES.items()}
    width = {n: spec.stages[-2].channels for n, spec in BASELINES.items()}
    max_kernel = {n: max(s.kernel for s in spec.stages[1:]) for n, spec in BASELINES.items()}
    assert depth["A"] > depth["B"] > depth["C"]
    assert width["A"] < width["B"] < width["C"]
    assert max_kernel["B"] == 7 and max_kernel["A"] == 3


def test_mbconv_skip_only_when_shapes_allow() -> None:
    assert MBConv(8, 8, 3, 1, 6).use_residual
    assert not MBConv(8, 16, 3, 1, 6).use_residual
    assert not MBConv(8, 8, 3, 2, 6).use_residual
    block = MBConv(8, 8, 3, 1, 6).eval()
    last_bn = next(m for m in block.project if isinstance(m, nn.BatchNorm2d))
    nn.init.zeros_(last_bn.weight)
    nn.init.zeros_(last_bn.bias)
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        assert torch.equal(block(x), x)  # branch is zero, so only the skip remains


def test_mbconv_expansion_one_has_no_expand_conv() -> None:
    assert isinstance(MBConv(8, 8, 3, expansion=1).expand, nn.Identity)
    assert MBConv(8, 8, 3, expansion=6).expand[0].out_channels == 48


def test_convs_have_no_bias() -> None:
    model = EffNet(BASELINES["C"])
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_se_adds_parameters() -> None:
    spec = BASELINES["C"]
    with_se = NetSpec.from_dict({**spec.to_dict(), "se_ratio": 0.25})
    assert count_params(EffNet(with_se)) > count_params(EffNet(spec))
    block = MBConv(8, 8, 3, 1, 6, se_ratio=0.25)
    assert block(torch.randn(2, 8, 6, 6)).shape == (2, 8, 6, 6)


def test_drop_connect_train_vs_eval() -> None:
    torch.manual_seed(0)
    block = MBConv(8, 8, 3, 1, 6, drop_connect=1.0)
    x = torch.randn(4, 8, 6, 6)
    block.train()
    assert torch.equal(block(x), x)  # every sample's residual branch dropped
    block.eval()
    with torch.no_grad():
        assert not torch.allclose(block(x), x)
    assert count_params(block) == count_params(MBConv(8, 8, 3, 1, 6))


def test_drop_connect_rate_grows_with_depth() -> None:
    spec = NetSpec.from_dict({**BASELINES["A"].to_dict(), "drop_connect": 0.2})
    model = EffNet(spec)
    rates = [b.drop.p for b in model.modules() if isinstance(b, MBConv) and b.use_residual]
    assert rates == sorted(rates) and 0 < rates[-1] < 0.2
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_json_round_trip(name: str) -> None:
    for spec in (NetSpec.from_dict({**BASELINES[name].to_dict(), "se_ratio": 0.25, "resolution": 97}),
                 scale(BASELINES[name], 1.4, 1.05, 1.14, 2)):
        back = NetSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert back == spec
        assert isinstance(back.stages, tuple) and isinstance(back.stages[0], StageSpec)


def test_invalid_specs() -> None:
    conv, mb = StageSpec("conv", 3, 1, 8), StageSpec("mbconv", 3, 1, 8)
    with pytest.raises(ValueError):
        NetSpec("x", (conv, conv))
    with pytest.raises(ValueError):
        NetSpec("x", (mb, mb, conv))
    with pytest.raises(ValueError):
        StageSpec("mbconv", 4, 1, 8)
    assert isinstance(EffNet(NetSpec("ok", (conv, mb, conv))), EffNet)


def test_fused_mbconv_is_one_full_convolution_where_mbconv_has_expand_and_depthwise() -> None:
    one = FusedMBConv(12, 16, 3, stride=2, expansion=1)
    assert one.expand[0].groups == 1 and (one.expand[0].in_channels, one.expand[0].out_channels) == (12, 16)
    assert isinstance(one.project, nn.Identity) and not one.use_residual
    six = FusedMBConv(16, 16, 5, expansion=6)
    assert six.expand[0].kernel_size == (5, 5) and six.expand[0].out_channels == 96  # exactly cin * t
    assert six.project[0].kernel_size == (1, 1) and six.use_residual
    assert len(six.project) == 2  # conv + BN, no activation after the projection
    assert six(torch.randn(2, 16, 9, 9)).shape == (2, 16, 9, 9)


def test_fused_early_turns_the_first_stages_fused_and_keeps_everything_else() -> None:
    spec = fused_early(BASELINES["C"], 2)
    assert spec.name == "C-fused2" and [s.op for s in spec.stages] == ["conv", "fused", "fused", "mbconv", "mbconv", "conv"]
    assert str(spec.stages[2]) == "fused_r1_k5_s1_e6_c22" and StageSpec.parse("fused_r1_k5_s1_e6_c22") == spec.stages[2]
    assert [(s.kernel, s.stride, s.channels, s.layers) for s in spec.stages] == \
        [(s.kernel, s.stride, s.channels, s.layers) for s in BASELINES["C"].stages]
    assert spec.table()[1]["operator"] == "Fused-MBConv t=1"
    model = EffNet(scale(spec, 1.2, 1.05, 1.23, 1))  # scaling keeps the op
    assert sum(isinstance(m, FusedMBConv) for m in model.modules()) == 2
    assert model(torch.randn(2, 3, 79, 79)).shape == (2, 2)
    assert NetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="cannot fuse 5"):
        fused_early(BASELINES["C"], 5)
