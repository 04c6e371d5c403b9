import math

import pytest
from torch import nn

from effnb.seed_study import GRID_MULTIPLIERS
from effnb.nn.flops import count_flops, scaling_table
from effnb.nn.model import BASELINES, EffNet, NetSpec, Scaling, StageSpec
from effnb.nn.scaling import (
    constraint,
    round_half_up,
    scale,
)

C = BASELINES["C"]


def test_phi_zero_is_identity() -> None:
    for abg in GRID_MULTIPLIERS:
        assert scale(C, *abg, 0).content() == C.content()


def test_scaled_spec_records_how_it_was_scaled() -> None:
    names = set()
    for a, b, g in GRID_MULTIPLIERS:
        scaled = scale(C, a, b, g, 1)
        assert scaled.scaling == Scaling("C", a, b, g, 1)
        names.add(scaled.name)
    assert len(names) == len(GRID_MULTIPLIERS)  # each candidate says which it is
    assert scale(C, 1.2, 1.05, 1.23, 2).name == "C-a1.2-b1.05-g1.23-phi2"
    assert C.scaling is None


@pytest.mark.parametrize("abg", GRID_MULTIPLIERS)
@pytest.mark.parametrize("phi", [1, 2, 3, 4])
def test_fixed_stages(abg: tuple[float, float, float], phi: int) -> None:
    scaled = scale(C, *abg, phi)
    assert scaled.stages[0] == C.stages[0] and scaled.stages[-1] == C.stages[-1]
    assert scaled.stages[1].layers == 1
    for old, new in zip(C.stages[1:-1], scaled.stages[1:-1]):
        assert (new.kernel, new.stride, new.expansion) == (old.kernel, old.stride, old.expansion)
        assert new.channels >= old.channels and new.layers >= old.layers


def test_stage2_width_grows_depth_does_not() -> None:
    scaled = scale(C, 1.4, 1.23, 1.0, 4)
    assert scaled.stages[1].layers == 1
    assert scaled.stages[1].channels == 37  # 16 * 1.23**4 = 36.6
    assert scaled.stages[3].layers == 8  # 2 * 1.4**4 = 7.68


def test_round_half_up() -> None:
    assert [round_half_up(x) for x in (0.5, 1.49, 2.5, 3.5, 4.51)] == [1, 1, 3, 4, 5]


def test_scale_rounds_half_up() -> None:
    conv, mb = StageSpec("conv", 3, 2, 8), StageSpec("mbconv", 3, 1, 10, 2, 6)
    spec = NetSpec("toy", (conv, mb, mb, conv), resolution=10)
    scaled = scale(spec, 1.25, 1.25, 1.25, 1)  # 2*1.25 = 2.5, 10*1.25 = 12.5
    assert [s.layers for s in scaled.stages] == [1, 2, 3, 1]
    assert [s.channels for s in scaled.stages] == [8, 13, 13, 8]
    assert scaled.resolution == 13


def test_seed_resolutions() -> None:
    assert [scale(C, 1.2, 1.05, 1.23, phi).resolution for phi in range(5)] == [64, 79, 97, 119, 146]


BAD_ARGS = [(0.9, 1.1, 1.1, 1), (1.1, 0.9, 1.1, 1), (1.1, 1.1, 0.9, 1), (1.2, 1.05, 1.23, -1)]


@pytest.mark.parametrize("bad", BAD_ARGS)
def test_scale_rejects_bad_arguments(bad: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError):
        scale(C, *bad)


@pytest.mark.parametrize("bad", [(1.2, 1.05, 1.23, math.inf), (math.nan, 1.05, 1.23, 1), (1.2, math.inf, 1.23, 1),
                                 (1.2, 1.05, -math.nan, 1), (1.2, 1.05, 1.23, -math.inf)])
def test_scale_rejects_non_finite_numbers(bad: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError, match="must be finite numbers"):
        scale(C, *bad)


@pytest.mark.parametrize("bad", [(1.2, 1.05, 1.23, "1"), (None, 1.05, 1.23, 1), (1.2, True, 1.23, 1)])
def test_scale_rejects_what_is_not_a_number(bad: tuple) -> None:
    with pytest.raises(ValueError, match="must be numbers"):
        scale(C, *bad)


def test_scale_bounds_the_growth() -> None:
    assert scale(C, 1.0, 1.0, 1.0, 1e6).resolution == C.resolution  # no growth at all: any phi
    scale(C, 2 ** 0.5, 2 ** 0.25, 1.0, 9.99)  # FLOPs x 2**9.99: just under the limit
    with pytest.raises(ValueError, match="multiplies the FLOPs by more than 1024"):
        scale(C, 1.2, 1.05, 1.23, 11)
    with pytest.raises(ValueError, match="more than 1024"):
        scale(C, 2.0, 1.0, 1.0, 1e300)


def test_seed_grid_satisfies_constraint() -> None:
    assert all(abs(constraint(*abg) - 2) <= 0.1 for abg in GRID_MULTIPLIERS)


def test_count_flops_single_conv() -> None:
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    assert count_flops(conv, 16, in_channels=4) == 2 * 4 * 8 * 3 * 3 * 16 * 16
    strided = nn.Conv2d(3, 6, 5, stride=2, padding=2, bias=False)
    assert count_flops(strided, 32) == 2 * 3 * 6 * 5 * 5 * 16 * 16
    with pytest.raises(ValueError):
        count_flops(conv)


def test_count_flops_model() -> None:
    model = EffNet(C).train()
    f64 = count_flops(model)
    assert model.training  # mode restored
    assert f64 == count_flops(C) == count_flops(C, 64)
    ratio = count_flops(C, 128) / f64
    assert 3.8 < ratio < 4.2  # ~quadratic in resolution


def test_scaling_table_monotonic() -> None:
    table = scaling_table(C, 1.2, 1.05, 1.23)
    assert table.index.tolist() == [0, 1, 2, 3, 4]
    assert table["resolution"].tolist() == [64, 79, 97, 119, 146]
    assert table.loc[0, "flops_ratio"] == 1.0 and table.loc[0, "deviation"] == 0.0
    assert table.loc[0, "MFLOPs (2/MAC)"] == round(count_flops(C) / 1e6, 3)
    assert table["flops_ratio"].is_monotonic_increasing and table["params"].is_monotonic_increasing
    assert table["deviation"].abs().max() < 0.5