"""The GPU-resident pipeline, run on the CPU: the cache held as tensors, batched roi_align crops, deferred host
syncs. Each is checked against today's CPU path (no GPU needed)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from synthetic import TINY_SPEC

from effnb.data.transforms import crop_resize, eval_boxes, roi_crop_resize, sample_crop_boxes
from effnb.nn.model import EffNet
from effnb.train import feed as feed_module
from effnb.train.feed import Feed, resident_images
from effnb.train.fit import TrainConfig, TrainingDiverged, default_sync_every, fit, use_bf16
from effnb.train.inference import predict


def _on_cpu_resident(feed: Feed) -> Feed:
    """``feed`` with its cache held as tensors, as :meth:`Feed.on` holds it on a GPU."""
    return dataclasses.replace(feed, resident=resident_images(feed.cache, "cpu"))


def test_roi_align_crops_are_close_to_the_antialiased_crops(small_cache):
    idx = np.arange(16)
    images = torch.from_numpy(np.ascontiguousarray(small_cache.images[idx]))
    hw = torch.from_numpy(np.asarray(small_cache.hw[idx]))
    for boxes, size in [(sample_crop_boxes(hw, (0.4, 0.9), torch.Generator().manual_seed(0))[0], 24),
                        (eval_boxes(hw, 40), 40)]:
        plain, batched = crop_resize(images, boxes, size), roi_crop_resize(images, boxes, size)
        assert batched.shape == plain.shape and batched.is_contiguous(memory_format=torch.channels_last)
        difference = (batched - plain).abs()
        assert difference.mean() < 4 and difference.max() < 64, (difference.mean(), difference.max())
    shifted = roi_crop_resize(images, boxes + 3, size)  # a different crop is farther away than the resampling error
    assert (shifted - plain).abs().mean() > 2 * (batched - plain).abs().mean()


def test_a_resident_cache_gives_the_batches_of_the_numpy_cache(small_cache):
    for mode in ("train", "eval"):
        feed = Feed(small_cache, np.arange(len(small_cache)), 32, mode, batch_size=16)
        resident = _on_cpu_resident(feed)
        plain = list(feed.batches(torch.Generator().manual_seed(1), shuffle=True))
        held = list(resident.batches(torch.Generator().manual_seed(1), shuffle=True))
        assert len(plain) == len(held)
        for (x, y), (xr, yr) in zip(plain, held):
            assert torch.equal(x, xr) and torch.equal(y, yr)
        shares = list(resident.batches(torch.Generator().manual_seed(1), shuffle=True, part=(1, 2)))
        assert torch.equal(shares[0][1], plain[0][1][8:])


def test_the_cache_is_copied_once_per_device_and_a_feed_on_the_cpu_stays_itself(small_cache):
    assert resident_images(small_cache, "cpu") is resident_images(small_cache, "cpu")
    labels = torch.from_numpy(small_cache.labels.astype(np.int64))
    assert torch.equal(resident_images(small_cache, "cpu").labels, labels)
    feed = Feed(small_cache, np.arange(8), 32)
    assert feed.on("cpu") is feed and feed_module._RESIDENT[0][0] is small_cache


def test_deferred_host_syncs_train_the_same_weights_and_sum_the_same_loss(small_cache):
    feed = Feed(small_cache, np.arange(len(small_cache)), 32, batch_size=8)
    runs = []
    for sync_every in (1, 3):
        torch.manual_seed(0)
        model = EffNet(TINY_SPEC)
        state = fit(model, feed, TrainConfig(epochs=2, lr=3e-3), progress=False, sync_every=sync_every)
        runs.append((model.state_dict(), state.history))
    (a, history_a), (b, history_b) = runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    for row_a, row_b in zip(history_a, history_b):
        assert row_a["train_acc"] == row_b["train_acc"]
        assert row_a["train_loss"] == pytest.approx(row_b["train_loss"], rel=1e-5)


def test_deferred_host_syncs_still_stop_a_diverging_run(small_cache):
    torch.manual_seed(0)
    model = EffNet(TINY_SPEC)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        fit(model, Feed(small_cache, np.arange(len(small_cache)), 32, batch_size=8), TrainConfig(epochs=1),
            progress=False, sync_every=4)


def test_predict_on_a_resident_cache_gives_the_same_logits(small_cache):
    torch.manual_seed(0)
    model = EffNet(TINY_SPEC).eval()
    feed = Feed(small_cache, np.arange(len(small_cache)), 40, "eval", batch_size=16)
    plain, labels = predict(model, feed, progress=False, onnx=False, bf16=False)
    held, held_labels = predict(model, _on_cpu_resident(feed), progress=False, onnx=False, bf16=False)
    assert torch.equal(plain, held) and torch.equal(labels, held_labels)


def test_syncs_and_bf16_by_device():
    cpu = torch.device("cpu")
    assert default_sync_every(cpu) == 1 and default_sync_every(torch.device("meta")) > 1
    assert use_bf16(TrainConfig(epochs=1, bf16=None), cpu) is False  # None: bf16 on CUDA only
    assert use_bf16(TrainConfig(epochs=1, bf16=True), cpu) is True
