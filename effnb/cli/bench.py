"""``effnb bench``: training, data-pipeline and evaluation throughput on this machine, measured in one run.

Compares the model-only training step (random tensors already in memory) with ``fit`` through the
real data pipeline (cache -> batched crop/resize/augment -> step), so the ratio shows what the data
pipeline costs; then, interleaved round by round so that the machine's minute-to-minute swings hit
both sides alike, the plain fp32 evaluation path against every faster one (:func:`eval_paths`: smaller batches,
BN folded, ONNX Runtime, bf16) at the FixRes test resolution, and the training step with and without bf16
autocast. The network and σ are the study's own choices, read from its notebook outputs;
each value that has to fall back is printed as such.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F

from effnb.data.fixres import estimate_sigma, recommended_test_resolution
from effnb.nn.model import BASELINES, EffNet, NetSpec, fused_early
from effnb import seed_study
from effnb.nn.scaling import scale
from effnb.study.context import Study, prepare_study
from effnb.study.outputs import read_output
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import EVAL_BATCH, Feed
from effnb.train.fit import TrainConfig, fit
from effnb.train.inference import bf16_is_fast, evaluate, faster_fp32_path, predict
from effnb.train.modes import autocast
from effnb.train.onnx_runtime import ort_available, ort_forward


def model_step_rate(spec: NetSpec, batch: int = 64, steps: int = 12, channels_last: bool = True,
                    bf16: bool = False) -> float:
    """Training steps on random tensors already in memory, in images/s."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = EffNet(spec).to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, spec.resolution, spec.resolution).contiguous(memory_format=fmt)
    y = torch.randint(0, spec.num_classes, (batch,))
    for i in range(2 + steps):
        if i == 2:
            start = time.perf_counter()
        with autocast(torch.device("cpu"), bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def pipeline_rate(feed: Feed, batches: int) -> float:
    """The data pipeline alone (gather from the cache, crop, resize, augment), in images/s."""
    gen = torch.Generator().manual_seed(0)
    start, seen = time.perf_counter(), 0
    for i, (x, _) in enumerate(feed.batches(gen, shuffle=True)):
        seen += len(x)
        if i + 1 == batches:
            break
    return seen / (time.perf_counter() - start)


def study_choices(study: Study) -> tuple[NetSpec, str | None, float, list[str]]:
    """The final model's spec, its trained checkpoint (if any) and σ, from the study's notebook outputs.

    Returns ``(spec, checkpoint or None, sigma, notes)``; every note names a value that is not the study's.
    """
    notes, out = [], study.artifacts_dir
    scaling = read_output(out, "scaling", required=False)
    if scaling is not None:
        spec, checkpoint = NetSpec.from_dict(scaling["spec"]), scaling.get("checkpoint")
    else:
        baselines, grid = read_output(out, "baselines", required=False), read_output(out, "grid", required=False)
        base = baselines["chosen"] if baselines else "C"
        abg = tuple(grid[k] for k in ("alpha", "beta", "gamma")) if grid else seed_study.GRID_MULTIPLIERS[0]
        if baselines is None:
            notes.append(f"no {out}/baselines.json: baseline C (the seed's choice), not the study's")
        if grid is None:
            notes.append(f"no {out}/grid.json: alpha, beta, gamma = {abg} (the seed's experiment 1), not the study's")
        notes.append(f"no {out}/scaling.json: phi = {study.profile.final.phi} from the profile, untrained weights")
        spec, checkpoint = scale(BASELINES[base], *abg, study.profile.final.phi), None
    data = read_output(out, "data", required=False)
    if data is not None:
        sigma = data["sigma"]
    else:
        sigma = estimate_sigma(study.cache.hw[study.splits["train"]], study.recipe.train.p_range, seed=study.seed)
        notes.append(f"no {out}/data.json: sigma = {sigma:.3f} measured now on the train split")
    return spec, checkpoint, sigma, notes


def eval_paths(onnx: bool) -> dict[str, dict]:
    """The evaluation paths :func:`run_bench` compares, as options of :func:`~effnb.train.inference.evaluate`; the first,
    the plain fp32 path in the study's batches of 100, is the reference."""
    paths = {"plain fp32 path (PyTorch, channels-last), batch 100": {"fast": False},
             f"plain fp32 path, batch {EVAL_BATCH}": {"fast": False, "batch_size": EVAL_BATCH},
             "PyTorch, BN folded, fp32, batch 64": {"bf16": False, "onnx": False, "batch_size": 64},
             f"PyTorch, BN folded, fp32, batch {EVAL_BATCH}": {"bf16": False, "onnx": False}}
    if onnx:
        paths["ONNX Runtime, fp32, batch 256"] = {"bf16": False, "onnx": True, "batch_size": 256}
        paths[f"ONNX Runtime, fp32, batch {EVAL_BATCH}"] = {"bf16": False, "onnx": True}
    paths[f"PyTorch, BN folded, bf16 autocast, batch {EVAL_BATCH}"] = {"bf16": True}
    return paths


def interleaved(measurements: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of each measurement over ``rounds`` rounds, the measurements taking turns within each round."""
    values: dict[str, list[float]] = {name: [] for name in measurements}
    for _ in range(rounds):
        for name, measure in measurements.items():
            values[name].append(measure())
    return {name: statistics.median(v) for name, v in values.items()}


class Rows(list):
    """The measured rows; :meth:`record` appends one and prints it as it comes."""

    def record(self, what: str, value: float, note: str = "") -> None:
        self.append({"measurement": what, "img/s": round(value, 1), "note": note})
        print(f"{what:<62} {value:8.1f} img/s  {note}", flush=True)


def bench_training(rows: Rows, study: Study, final: NetSpec, steps: int) -> None:
    """The model-only training step against ``fit`` through the real data pipeline and the pipeline alone."""
    batch = study.recipe.batch_size
    images = study.splits["train"][:steps * batch]
    for spec in (BASELINES["C"], final):
        k = spec.resolution
        model_only = model_step_rate(spec, batch, steps)
        rows.record(f"model-only train step, {spec.name} @{k}px", model_only)
        torch.manual_seed(0)
        state = fit(EffNet(spec), Feed(study.cache, images, k, batch_size=batch), TrainConfig(epochs=1),
                    progress=False)
        through_fit = state.history[0]["img_per_s"]
        rows.record(f"fit() with the real data pipeline, {spec.name} @{k}px", through_fit,
                    f"{100 * through_fit / model_only:.0f} % of model-only")
        rows.record(f"data pipeline alone @{k}px", pipeline_rate(Feed(study.cache, images, k, batch_size=batch), steps))


def bench_evaluation(rows: Rows, study: Study, final: NetSpec, sigma: float, checkpoint: str | None, steps: int,
                     rounds: int, eval_images: int) -> None:
    """Every evaluation path against the plain one, the bf16 training step, and their predictions' agreement."""
    batch = study.recipe.batch_size
    k_test, k_image = recommended_test_resolution(final.resolution, sigma)
    model = load_checkpoint(checkpoint)[0] if checkpoint else EffNet(final)
    feed = Feed(study.cache, study.splits["test"][:eval_images], k_test, "eval", k_image, batch_size=100)
    native = bf16_is_fast("cpu")
    small = feed if native else replace(feed, indices=feed.indices[:max(100, eval_images // 8)])
    paths = eval_paths(ort_available())

    def images(options: dict) -> Feed:  # bf16 where it is emulated is slow: fewer images
        return small if options.get("bf16") else feed

    print(f"interleaved, median of {rounds} rounds: evaluation of {final.name} at the FixRes resolution {k_test}px "
          f"on {len(feed)} test images ({len(small)} for bf16), the training step with and without bf16 autocast")
    measurements = {label: (lambda o=options: evaluate(model, images(o), progress=False, **o)["img_per_s"])
                    for label, options in paths.items()}
    medians = interleaved({**measurements,
                           "step fp32": lambda: model_step_rate(final, batch, steps),
                           "step bf16": lambda: model_step_rate(final, batch, max(2, steps // 8), bf16=True)}, rounds)
    reference = next(iter(paths))
    for label in paths:
        rows.record(f"evaluation, {label}, @{k_test}px", medians[label],
                    "" if label == reference else f"{medians[label] / medians[reference]:.2f}x the plain path")
    rows.record(f"model-only train step, {final.name}, fp32", medians["step fp32"])
    rows.record(f"model-only train step, {final.name}, bf16 autocast", medians["step bf16"],
                f"{medians['step bf16'] / medians['step fp32']:.2f}x fp32")
    plain = predict(model, feed, progress=False, fast=False)[0].argmax(1)
    agree = {label: int((predict(model, images(o), progress=False, **o)[0].argmax(1) == plain[:len(images(o))]).sum())
             for label, o in paths.items() if o.get("fast", True)}
    weights = "the study's trained final model" if checkpoint else "untrained weights"
    ort = ort_forward(model, k_test) if ort_available() else None
    default = ("PyTorch, BN folded, bf16" if native and not ort_available() else "ONNX Runtime, fp32"
               if ort and faster_fp32_path(model, ort, k_test, EVAL_BATCH) else "PyTorch, BN folded, fp32")
    print(f"the fast path here (effnb evaluate, the sweeps, effnb predict): {default}, batch {EVAL_BATCH}")
    print(f"agreement with the plain path ({weights}): " + "; ".join(
        f"{label} {n} of {len(images(paths[label]))}" for label, n in agree.items()))


def bench_scaling(rows: Rows, batch: int, steps: int, rounds: int) -> None:
    """The model-only train step of C scaled by phi = 1, 2, 3 and with a Fused-MBConv stage, interleaved."""
    scaled = {phi: scale(BASELINES["C"], *seed_study.GRID_MULTIPLIERS[0], phi) for phi in (1, 2, 3)}
    networks = {**{f"phi = {phi} @{net.resolution}px": net for phi, net in scaled.items()},
                "phi = 2, first MBConv stage Fused-MBConv": fused_early(scaled[2], 1)}
    print(f"interleaved, median of {rounds} rounds: the model-only train step of C scaled by alpha, beta, gamma = "
          f"{seed_study.GRID_MULTIPLIERS[0]} (effnb ablate --phi budgets its rows by these times) and with a "
          "Fused-MBConv stage")
    rates = interleaved({name: (lambda net=net: model_step_rate(net, batch, steps)) for name, net in networks.items()},
                        rounds)
    reference = rates[f"phi = 2 @{scaled[2].resolution}px"]
    for name, rate in rates.items():
        rows.record(f"model-only train step, {name}", rate, f"{reference / rate:.2f}x phi = 2's time per image")


def bench_variants(rows: Rows, batch: int, steps: int) -> None:
    """Baseline C's train step in NCHW, at two other batch sizes, and on one thread."""
    base = BASELINES["C"]
    rows.record("variant: contiguous (NCHW) memory format, C @64px", model_step_rate(base, batch, steps, False))
    for b in (32, 128):
        rows.record(f"variant: batch {b}, C @64px", model_step_rate(base, b, max(3, steps * 64 // b)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows.record("variant: 1 thread, C @64px", model_step_rate(base, batch, steps))
    finally:
        torch.set_num_threads(threads)


def run_bench(data_dir: str | None, profile: str = "cpu", artifacts_dir: str = "artifacts", steps: int = 12,
              rounds: int = 3, eval_images: int = 1000, checkpoint: str | None = None) -> list[dict]:
    """Measure and print every figure; returns the rows. ``checkpoint`` (default: the study's final model) is the
    model evaluated and trained."""
    asked = load_checkpoint(checkpoint)[0].spec if checkpoint is not None else None  # before minutes of decoding
    study = prepare_study(profile, data_dir, artifacts_dir)
    batch = study.recipe.batch_size
    final, chosen, sigma, notes = study_choices(study)
    if asked is not None:
        final = asked
        notes = [n for n in notes if "data.json" in n] + [f"the model is {checkpoint}, as asked"]
    checkpoint = checkpoint or chosen
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, native bf16: "
          f"{bf16_is_fast('cpu')}; final model {final.name} @{final.resolution}px, sigma {sigma:.3f}")
    for note in notes:
        print(f"note: {note}")
    rows = Rows()
    bench_training(rows, study, final, steps)
    bench_evaluation(rows, study, final, sigma, checkpoint, steps, rounds, eval_images)
    bench_scaling(rows, batch, steps, rounds)
    bench_variants(rows, batch, steps)
    return list(rows)
