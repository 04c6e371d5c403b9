"""Training engine: learning, determinism, resume, read-back, FixRes variants, divergence."""
from __future__ import annotations

import contextlib
import dataclasses
import json

import numpy as np
import pytest
import torch

import effnb.train.experiments as experiments
import effnb.train.inference as inference
from effnb.nn.model import BASELINES, EffNet
from effnb.train.checkpoint import load_checkpoint
from effnb.train.experiments import Experiment, read_result, run_experiment
from effnb.train.feed import EVAL_BATCH, Feed
from effnb.train.fit import TrainConfig, TrainingDiverged, fit
from effnb.train.inference import evaluate, inference_model, predict, recalibrate_bn
from effnb.train.onnx_runtime import ort_available, ort_forward

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SPEC = dataclasses.replace(BASELINES["C"], resolution=32)


def tiny_experiment(cache, epochs=3, train_options=None, **kw) -> Experiment:
    idx = tuple(range(len(cache)))
    return Experiment(name="tiny", spec=SPEC, train=TrainConfig(epochs=epochs, lr=3e-3, **(train_options or {})),
                      train_indices=idx, eval_indices=idx, batch_size=16, **kw)


def test_fit_learns_a_two_class_set(small_cache):
    torch.manual_seed(0)
    model = EffNet(SPEC)
    idx = np.arange(len(small_cache))
    state = fit(model, Feed(small_cache, idx, 32, batch_size=8), TrainConfig(epochs=8, lr=3e-3), progress=False)
    assert len(state.history) == 8
    assert {"train_loss", "train_acc", "lr", "img_per_s", "seconds"} <= set(state.history[0])
    accuracy = evaluate(model, Feed(small_cache, idx, 32, "eval"), progress=False)["accuracy"]
    assert accuracy > 0.85  # chance is 0.5


def test_same_seed_same_history(small_cache):
    histories = []
    for _ in range(2):
        torch.manual_seed(1)
        state = fit(EffNet(SPEC), Feed(small_cache, np.arange(len(small_cache)), 32, batch_size=16),
                    TrainConfig(epochs=2), seed=3, progress=False)
        histories.append([(h["train_loss"], h["train_acc"]) for h in state.history])
    assert histories[0] == histories[1]


def interrupt_after(epoch: int, exp: Experiment, cache, artifacts, monkeypatch, **run_options) -> None:
    """Run ``exp`` (with ``run_options`` for run_experiment) and stop it, as Ctrl-C would, right after epoch
    ``epoch`` is saved."""
    real_fit = experiments.fit

    def interrupted_fit(model, train, config, *, on_epoch_end, **options):
        def stop(model, state, opt, sched):
            on_epoch_end(model, state, opt, sched)
            if state.epoch == epoch:
                raise KeyboardInterrupt
        return real_fit(model, train, config, on_epoch_end=stop, **options)

    with monkeypatch.context() as m:
        m.setattr(experiments, "fit", interrupted_fit)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(exp, cache, artifacts, progress=False, **run_options)


def assert_same_weights(checkpoint_a: str, checkpoint_b: str) -> None:
    a = torch.load(checkpoint_a, weights_only=True)["state_dict"]
    b = torch.load(checkpoint_b, weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("train_options", [None, dict(ema_decay=0.8, size_start=0.5, p_range_start=(0.5, 1.0),
                                                      schedule="linear")], ids=["plain", "ema-progressive"])
def test_resume_after_interruption_matches_uninterrupted_run(small_cache, tmp_path, monkeypatch, train_options):
    exp = tiny_experiment(small_cache, epochs=3, train_options=train_options)
    straight = run_experiment(exp, small_cache, tmp_path / "a", progress=False)
    interrupt_after(2, exp, small_cache, tmp_path / "b", monkeypatch)
    assert not (exp.folder(tmp_path / "b") / "result.json").exists()
    assert (exp.folder(tmp_path / "b") / "progress.pt").exists()
    resumed = run_experiment(exp, small_cache, tmp_path / "b", progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert_same_weights(straight["checkpoint"], resumed["checkpoint"])


def test_finished_experiment_is_read_back_not_retrained(small_cache, tmp_path, monkeypatch):
    exp = tiny_experiment(small_cache, epochs=1)
    first = run_experiment(exp, small_cache, tmp_path, progress=False)
    monkeypatch.setattr(experiments, "fit", lambda *a, **k: pytest.fail("trained again"))
    assert run_experiment(exp, small_cache, tmp_path, progress=False) == first
    relabelled = dataclasses.replace(exp, name="the same run, another label")
    assert run_experiment(relabelled, small_cache, tmp_path, progress=False) == first


def _split_state(model):
    bn_buffers = {n for n, _ in model.named_buffers() if "running" in n or "num_batches" in n}
    return {n: t.detach().clone() for n, t in model.state_dict().items()}, bn_buffers


def test_bn_recalibration_changes_only_bn_buffers(small_cache):
    torch.manual_seed(0)
    model = EffNet(SPEC)
    before, bn_buffers = _split_state(model)
    recalibrate_bn(model, Feed(small_cache, np.arange(len(small_cache)), 48, "eval", batch_size=16), progress=False)
    after = model.state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= bn_buffers
    assert any("running_mean" in n for n in changed)


def test_head_finetune_changes_only_classifier_and_final_bn(small_cache):
    torch.manual_seed(0)
    model = EffNet(SPEC)
    before, _ = _split_state(model)
    fit(model, Feed(small_cache, np.arange(len(small_cache)), 48, "eval", batch_size=16),
        TrainConfig(epochs=1, lr=1e-2, trainable="head", schedule="constant"), progress=False)
    after = model.state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed
    assert all(n.startswith(("classifier.", "final_bn.")) for n in changed), changed
    assert "classifier.weight" in changed


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_epoch(small_cache):
    torch.manual_seed(0)
    model = EffNet(SPEC)
    saved = []

    def poison_after_first_epoch(model, state, opt, sched):
        saved.append(state.epoch)
        with torch.no_grad():
            model.classifier.weight.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="epoch 2"):
        fit(model, Feed(small_cache, np.arange(len(small_cache)), 32, batch_size=16), TrainConfig(epochs=3),
            on_epoch_end=poison_after_first_epoch, progress=False)
    assert saved == [1]


def test_unknown_trainable_set_is_refused(small_cache):
    with pytest.raises(ValueError, match="trainable"):
        fit(EffNet(SPEC), Feed(small_cache, np.arange(8), 32), TrainConfig(epochs=1, trainable="neck"),
            progress=False)


@pytest.mark.parametrize("damage", [b"", b"not a torch file", "truncated", "wrong weights"])
def test_damaged_progress_restarts_the_experiment_with_a_warning(damage, small_cache, tmp_path, monkeypatch):
    exp = tiny_experiment(small_cache, epochs=2)
    straight = run_experiment(exp, small_cache, tmp_path / "a", progress=False)
    interrupt_after(1, exp, small_cache, tmp_path / "b", monkeypatch)
    progress_path = exp.folder(tmp_path / "b") / "progress.pt"
    if damage == "truncated":
        progress_path.write_bytes(progress_path.read_bytes()[:1000])
    elif damage == "wrong weights":
        saved = torch.load(progress_path, weights_only=False)
        saved["model"] = {"classifier.weight": torch.zeros(1)}
        torch.save(saved, progress_path)
    else:
        progress_path.write_bytes(damage)
    with pytest.warns(UserWarning, match=f"{progress_path} is damaged .* restarting experiment 'tiny' from scratch"):
        restarted = run_experiment(exp, small_cache, tmp_path / "b", progress=False)
    assert [h["epoch"] for h in restarted["history"]] == [1, 2]
    assert (progress_path.parent / "progress.pt.damaged").is_file() and not progress_path.exists()
    assert_same_weights(straight["checkpoint"], restarted["checkpoint"])


@pytest.mark.parametrize("damage", ["garbage result", "checkpoint gone"])
def test_damaged_result_runs_the_experiment_again(damage, small_cache, tmp_path):
    exp = tiny_experiment(small_cache, epochs=1)
    first = run_experiment(exp, small_cache, tmp_path, progress=False)
    result_path = exp.folder(tmp_path) / "result.json"
    if damage == "garbage result":
        result_path.write_text('{"name": "tiny", ')
    else:
        (exp.folder(tmp_path) / "model.pt").unlink()
    with pytest.warns(UserWarning, match=f"{result_path} .*running experiment 'tiny' again"):
        again = run_experiment(exp, small_cache, tmp_path, progress=False)
    assert again["history"][0]["train_loss"] == pytest.approx(first["history"][0]["train_loss"])
    assert (exp.folder(tmp_path) / "model.pt").is_file()


@pytest.mark.parametrize("old_result", [False, True], ids=["hash recorded", "result without a hash"])
def test_damaged_checkpoint_beside_intact_result_runs_the_experiment_again(old_result, small_cache, tmp_path):
    exp = tiny_experiment(small_cache, epochs=1)
    first = run_experiment(exp, small_cache, tmp_path, progress=False)
    folder = exp.folder(tmp_path)
    if old_result:  # a result.json written before the checkpoint's hash was recorded
        result = json.loads((folder / "result.json").read_text())
        del result["checkpoint_sha256"]
        (folder / "result.json").write_text(json.dumps(result))
    data = bytearray((folder / "model.pt").read_bytes())
    if old_result:  # without a hash only what fails to load can be seen: a truncated copy
        data = data[: len(data) // 2]
    else:  # zeros in the middle, same size: torch.load would not notice
        data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"model\.pt is damaged .*running experiment 'tiny' again"):
        again = run_experiment(exp, small_cache, tmp_path, progress=False)
    assert again["history"][0]["train_loss"] == pytest.approx(first["history"][0]["train_loss"])
    assert (folder / "model.pt.damaged").is_file() and (folder / "result.json.damaged").is_file()
    load_checkpoint(folder / "model.pt")  # the new checkpoint is whole
    assert read_result(exp, tmp_path) == again


def test_resolution_is_bounded_by_the_cache_and_tiny_ones_warn(small_cache):
    idx = np.arange(8)
    Feed(small_cache, idx, 2 * small_cache.side, "eval")
    with pytest.raises(ValueError, match=f"above the limit of {2 * small_cache.side} px"):
        Feed(small_cache, idx, 2 * small_cache.side + 1)
    for bad in (0, -4, 3.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            Feed(small_cache, idx, bad)
    with pytest.warns(UserWarning, match="resolution 1 px is tiny"):
        Feed(small_cache, idx, 1)
# --- recipe mechanics: linear decay, EMA, progressive resizing, bf16, fast evaluation ---

def _fit(cache, config, batch=16, seed=0, **kw):
    torch.manual_seed(seed)
    model = EffNet(SPEC)
    state = fit(model, Feed(cache, np.arange(len(cache)), 32, batch_size=batch), config, progress=False, **kw)
    return model, state


def test_linear_schedule_decays_to_zero(small_cache):
    _, state = _fit(small_cache, TrainConfig(epochs=3, lr=1e-2, schedule="linear"))
    lrs = [h["lr"] for h in state.history]
    assert lrs[0] < 1e-2 and lrs == sorted(lrs, reverse=True)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_ema_tracks_weights_and_bn_buffers_without_changing_training(small_cache):
    plain, plain_state = _fit(small_cache, TrainConfig(epochs=2, lr=3e-3))
    slow, slow_state = _fit(small_cache, TrainConfig(epochs=2, lr=3e-3, ema_decay=0.9))
    # the average does not feed back into training: the same losses step by step
    assert [h["train_loss"] for h in slow_state.history] == [h["train_loss"] for h in plain_state.history]
    a, b = plain.state_dict(), slow.state_dict()
    assert not torch.allclose(a["classifier.weight"], b["classifier.weight"])
    assert not torch.allclose(a["final_bn.running_mean"], b["final_bn.running_mean"])  # BN buffers averaged too
    assert slow_state.ema_state is not None and int(slow_state.ema_state["n_averaged"]) == 2 * (len(small_cache) // 16)
    # with a decay near zero the average is the last weights
    last, _ = _fit(small_cache, TrainConfig(epochs=2, lr=3e-3, ema_decay=1e-9))
    for k, v in a.items():
        torch.testing.assert_close(last.state_dict()[k], v)


def test_ema_is_what_validation_sees(small_cache):
    idx = np.arange(len(small_cache))
    val = Feed(small_cache, idx, 32, "eval")
    model, state = _fit(small_cache, TrainConfig(epochs=1, lr=3e-3, ema_decay=0.5), val=val)
    assert state.history[-1]["val_acc"] == pytest.approx(evaluate(model, val, progress=False)["accuracy"])


def test_progressive_plan_rises_to_the_target_size_and_crop_range():
    config = TrainConfig(epochs=5, size_start=0.5, p_range_start=(0.6, 1.0), p_range=(0.2, 0.7))
    plan = [config.epoch_plan(e, 64) for e in range(5)]
    assert [size for size, _ in plan] == [32, 40, 48, 56, 64]
    assert plan[0][1] == (0.6, 1.0) and plan[-1][1] == (0.2, 0.7) and plan[2][1] == (0.4, 0.85)
    assert config.equivalent_epochs(64) == pytest.approx(sum((s / 64) ** 2 for s in (32, 40, 48, 56, 64)))
    assert TrainConfig(epochs=5).equivalent_epochs(64) == 5


def test_progressive_fit_trains_at_the_planned_sizes(small_cache, monkeypatch):
    import effnb.train.feed as feed
    seen = []
    real = feed.train_batch

    def spy(images, hw, size, generator=None, p_range=(0.2, 0.7), **kw):
        seen.append((size, p_range))
        return real(images, hw, size, generator=generator, p_range=p_range, **kw)

    monkeypatch.setattr(feed, "train_batch", spy)
    config = TrainConfig(epochs=3, size_start=0.5, p_range_start=(0.5, 1.0))
    _, state = _fit(small_cache, config)
    assert [h["size"] for h in state.history] == [16, 24, 32]
    assert sorted(set(seen)) == [(16, (0.5, 1.0)), (24, (0.35, 0.85)), (32, (0.2, 0.7))]


@pytest.mark.parametrize("bad", [dict(size_start=0), dict(p_range=(0.7, 0.2)), dict(ema_decay=1.0), dict(lr=0)])
def test_invalid_train_configs_are_refused(bad):
    with pytest.raises(ValueError):
        TrainConfig(epochs=1, **bad)


def test_bf16_training_runs_the_forward_pass_in_bf16(small_cache):
    dtypes = []
    torch.manual_seed(0)
    model = EffNet(SPEC)
    model.classifier.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype) if m.training else None)
    state = fit(model, Feed(small_cache, np.arange(32), 32, batch_size=16), TrainConfig(epochs=1, bf16=True),
                progress=False)
    assert set(dtypes) == {torch.bfloat16} and np.isfinite(state.history[0]["train_loss"])
    assert model.classifier.weight.dtype == torch.float32  # master weights stay fp32


@pytest.fixture(scope="module")
def trained(small_cache):
    model, _ = _fit(small_cache, TrainConfig(epochs=3, lr=3e-3))
    return model.eval()


@pytest.mark.parametrize("onnx", [False, True], ids=["pytorch-folded", "onnxruntime"])
def test_fast_evaluation_agrees_with_the_plain_fp32_path(trained, small_cache, onnx):
    if onnx and not ort_available():
        pytest.skip("onnxruntime is not installed (optional extra 'export')")
    feed = Feed(small_cache, np.arange(len(small_cache)), 48, "eval", batch_size=16)
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    plain, labels = predict(trained, feed, progress=False, fast=False)
    fast, fast_labels = predict(trained, feed, progress=False, fast=True, bf16=False, onnx=onnx)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)  # folding and fusing only reorder float arithmetic
    assert torch.equal(labels, fast_labels)
    half, _ = predict(trained, feed, progress=False, fast=True, bf16=True)
    assert (half.argmax(1) == plain.argmax(1)).float().mean() >= 0.95
    assert (half - plain).abs().max() < 0.1 * plain.abs().max()
    for k, v in trained.state_dict().items():  # the caller's model is untouched (folding works on a copy)
        assert torch.equal(v, before[k])


def test_onnx_runtime_runs_the_model_and_falls_back_when_absent(trained, small_cache, monkeypatch):
    if not ort_available():
        pytest.skip("onnxruntime is not installed (optional extra 'export')")
    forward = ort_forward(trained, 40)
    x = torch.rand(5, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(forward(x), trained(x), rtol=1e-4, atol=1e-4)
    feed = Feed(small_cache, np.arange(24), 40, "eval")
    plain, _ = predict(trained, feed, progress=False, fast=False, tta=True)
    mirrored, _ = predict(trained, feed, progress=False, tta=True, onnx=True)  # TTA through ONNX Runtime
    torch.testing.assert_close(mirrored, plain, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(inference, "ort_forward", lambda *a, **k: pytest.fail("ONNX Runtime used when absent"))
    monkeypatch.setattr(inference, "ort_available", lambda: False)
    torch.testing.assert_close(predict(trained, feed, progress=False, tta=True, bf16=False)[0], plain, rtol=1e-4,
                               atol=1e-4)


def test_a_model_onnx_cannot_export_is_evaluated_by_pytorch(trained, small_cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("cannot export")
    monkeypatch.setattr(torch.onnx, "export", refuse)
    assert ort_forward(trained, 32) is None
    feed = Feed(small_cache, np.arange(8), 32, "eval")
    fast, _ = predict(trained, feed, progress=False, onnx=True, bf16=False)
    torch.testing.assert_close(fast, predict(trained, feed, progress=False, fast=False)[0], rtol=1e-4, atol=1e-4)


def test_the_fast_path_runs_in_batches_of_eval_batch_unless_told(trained, small_cache, monkeypatch):
    sizes = []
    batches = Feed.batches
    monkeypatch.setattr(Feed, "batches", lambda self, *a, **k: (sizes.append(self.batch_size), batches(self, *a, **k))[1])
    feed = Feed(small_cache, np.arange(len(small_cache)), 32, "eval", batch_size=10)
    predict(trained, feed, progress=False, bf16=False)
    predict(trained, feed, progress=False, bf16=False, batch_size=7)
    predict(trained, feed, progress=False, fast=False)
    assert sizes == [EVAL_BATCH, 7, 10]  # the plain path keeps the feed's own batches


def test_inference_model_folds_batchnorm_into_the_convolutions(trained):
    def count(model):
        return sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())

    # every conv's BN is folded; the extra BN after the head (no conv before it) stays
    assert count(inference_model(trained)) == 1 < count(trained)


def test_flip_tta_averages_the_logits_of_the_mirrored_images(trained, small_cache):
    feed = Feed(small_cache, np.arange(24), 32, "eval")
    plain, _ = predict(trained, feed, progress=False, fast=False)
    tta, _ = predict(trained, feed, progress=False, fast=False, tta=True)
    x = torch.cat([x for x, _ in feed.batches()])
    with torch.no_grad():
        mirrored = trained(x.flip(-1))
    torch.testing.assert_close(tta, (plain + mirrored) / 2, rtol=1e-5, atol=1e-5)


def test_the_faster_fp32_path_is_chosen_by_timing_it_here(trained, monkeypatch):
    import time as clock

    monkeypatch.setattr(inference, "_FASTER", {})
    # a stand-in for ONNX Runtime far slower than the tiny network, so the outcome holds on a loaded machine
    slow = lambda x: (clock.sleep(0.5), torch.zeros(len(x), 2))[1]  # noqa: E731
    assert inference.faster_fp32_path(trained, slow, 32, 8) is None  # BN-folded PyTorch wins
    monkeypatch.setattr(inference, "_FASTER", {})
    instant = lambda x: torch.zeros(len(x), 2)  # noqa: E731
    assert inference.faster_fp32_path(trained, instant, 32, 8) is instant
    assert inference.faster_fp32_path(trained, slow, 32, 8) is slow  # decided once per network, size and batch
    assert inference.faster_fp32_path(trained, slow, 40, 8) is None


def test_automatic_fp32_choice_never_falls_back_to_bf16(trained, small_cache, monkeypatch):
    if not ort_available():
        pytest.skip("onnxruntime is not installed (optional extra 'export')")
    timed = []
    monkeypatch.setattr(inference, "faster_fp32_path", lambda *a, **k: timed.append(a[2:]))  # PyTorch wins (None)
    monkeypatch.setattr(inference, "bf16_is_fast", lambda device: True)
    monkeypatch.setattr(inference, "autocast", lambda device, bf16: pytest.fail("bf16 used") if bf16 else
                        contextlib.nullcontext())
    feed = Feed(small_cache, np.arange(len(small_cache)), 32, "eval")
    plain = predict(trained, feed, progress=False, fast=False)[0]
    for batch in (len(small_cache) // inference.AUTO_MIN_BATCHES, len(small_cache)):  # timed, and too few to time
        torch.testing.assert_close(predict(trained, feed, progress=False, batch_size=batch)[0], plain, rtol=1e-4,
                                   atol=1e-4)
    assert timed == [(32, len(small_cache) // inference.AUTO_MIN_BATCHES)]


def test_onnx_runtime_is_not_exported_again_where_pytorch_won_the_timing(trained, small_cache, monkeypatch):
    feed = Feed(small_cache, np.arange(len(small_cache)), 32, "eval")
    batch = len(small_cache) // inference.AUTO_MIN_BATCHES
    monkeypatch.setattr(inference, "ort_available", lambda: True)
    monkeypatch.setattr(inference, "_FASTER", {inference._fp32_key(trained, 32, batch): False})
    monkeypatch.setattr(inference, "ort_forward", lambda *a, **k: pytest.fail("exported although PyTorch won"))
    fast, _ = predict(trained, feed, progress=False, batch_size=batch)
    torch.testing.assert_close(fast, predict(trained, feed, progress=False, fast=False)[0], rtol=1e-4, atol=1e-4)
