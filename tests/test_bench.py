"""The evaluation paths ``effnb bench`` compares: each is a valid set of options of ``evaluate``, and the fp32 ones
give the plain path's predictions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from effnb.cli.bench import eval_paths
from effnb.nn.model import BASELINES, EffNet
from effnb.train.feed import EVAL_BATCH, Feed
from effnb.train.inference import predict
from effnb.train.onnx_runtime import ort_available


@pytest.mark.parametrize("onnx", [False, True], ids=["pytorch", "onnxruntime"])
def test_every_bench_path_runs_and_the_fp32_ones_agree_with_the_plain_path(small_cache, onnx):
    if onnx and not ort_available():
        pytest.skip("onnxruntime is not installed (optional extra 'export')")
    paths = eval_paths(onnx)
    reference, *others = paths.values()
    assert reference == {"fast": False}  # ratios are against the plain fp32 path in the study's batches
    assert any(o.get("onnx") for o in others) == onnx
    assert {o.get("batch_size", EVAL_BATCH) for o in others} >= {EVAL_BATCH}
    torch.manual_seed(0)
    model = EffNet(BASELINES["C"]).eval()
    feed = Feed(small_cache, np.arange(len(small_cache)), 40, "eval", batch_size=100)
    plain, labels = predict(model, feed, progress=False, **reference)
    for label, options in paths.items():
        logits, got = predict(model, feed, progress=False, **options)
        assert torch.equal(got, labels), label
        if not options.get("bf16"):
            torch.testing.assert_close(logits, plain, rtol=1e-4, atol=1e-4, msg=label)


def test_interleaved_ratios_compare_each_round_with_its_own_reference():
    from effnb.cli.bench import interleaved_ratios

    ref = iter([100.0, 50.0, 80.0])  # the machine slows down and recovers: the per-round ratio stays
    fast = iter([150.0, 75.0, 100.0])
    out = interleaved_ratios({"ref": lambda: next(ref), "fast": lambda: next(fast)}, {"fast": "ref"}, rounds=3)
    assert out["ref"] == (80.0, 1.0, 1.0, 1.0)
    assert out["fast"] == (100.0, 1.5, 1.25, 1.5)


@pytest.mark.parametrize("vendor, flags, lanes", [("AuthenticAMD", "fma avx2 avx512f", 8),
                                                  ("GenuineIntel", "fma avx2 avx512f", 16),
                                                  ("GenuineIntel", "fma avx2", 8), ("GenuineIntel", "sse2", 4)])
def test_the_cpu_peak_is_cores_fma_units_lanes_two_and_the_clock(monkeypatch, vendor, flags, lanes):
    import effnb.utils.device as device

    monkeypatch.setattr(device, "_cpuinfo", lambda: {"vendor_id": vendor, "flags": flags, "cpu MHz": "2500.000"})
    peak, derivation = device.cpu_peak_gflops(cores=2)
    assert peak == pytest.approx(2 * 2 * lanes * 2 * 2.5)
    assert "estimate" in derivation and f"{lanes} fp32 lanes" in derivation


def test_every_step_variant_trains(monkeypatch):
    import functools

    import torch

    from effnb.cli.bench import step_runner, step_variants
    from tests.synthetic import TINY_SPEC

    # the compiled variant through dynamo and AOT autograd (its forward and backward graphs) without inductor's C++
    # code generation, which takes 40-80 s of a 2-core CI machine even for the tiny network; `effnb bench --step`
    # times inductor itself
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    variants, references = step_variants(TINY_SPEC)
    assert set(references.values()) <= set(variants)
    for name, (_, variant) in variants.items():  # the tiny network in each variant's setting
        assert step_runner(TINY_SPEC, variant, batch=8)(1) > 0, name


def test_the_step_bench_leaves_out_bf16_where_the_cpu_emulates_it():
    from effnb.cli.bench import step_variants
    from tests.synthetic import TINY_SPEC

    with_bf16, _ = step_variants(TINY_SPEC, bf16=True)
    without, references = step_variants(TINY_SPEC, bf16=False)
    assert any(v.bf16 for _, v in with_bf16.values())
    assert not any(v.bf16 for _, v in without.values())
    assert set(references) <= set(without) and set(with_bf16) - set(without) == {"bf16 autocast"}
