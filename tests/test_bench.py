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
