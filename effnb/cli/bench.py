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

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from effnb.cli.timing import interleaved, interleaved_ratios
from effnb.data.fixres import estimate_sigma, recommended_test_resolution
from effnb.nn.flops import count_flops
from effnb.nn.model import BASELINES, EffNet, NetSpec, fused_early
from effnb import seed_study
from effnb.nn.scaling import scale
from effnb.study.context import Study, prepare_study, resolve_artifacts_dir
from effnb.study.profiles import Profile, get_profile
from effnb.study.outputs import read_output
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import EVAL_BATCH, Feed
from effnb.train.distributed import rank_throughput
from effnb.train.fit import TrainConfig, fit
from effnb.train.inference import bf16_is_fast, evaluate, faster_fp32_path, predict
from effnb.train.modes import autocast
from effnb.train.recipes import get_recipe
from effnb.train.onnx_runtime import ort_available, ort_forward
from effnb.utils.device import cpu_name, cpu_peak_gflops


@dataclass(frozen=True)
class StepVariant:
    """One way to run the training step; the defaults are the step ``fit`` ran before ``effnb bench --step`` chose
    its winners: channels-last, AdamW's per-parameter loop, the loss and accuracy read on the host after each step
    (and a finiteness check before it), fp32, the recipe's batch, torch's threads, eager (``compiled``:
    ``torch.compile``, inductor)."""

    channels_last: bool = True
    optimizer: Literal["loop", "foreach", "fused"] = "loop"
    syncs: bool = True
    bf16: bool = False
    batch: int | None = None
    threads: int | None = None
    compiled: bool = False


def step_runner(spec: NetSpec, variant: StepVariant = StepVariant(), batch: int = 64,
                clock: Callable[[], float] = time.perf_counter) -> Callable[[int], float]:
    """A model and optimiser warmed up with two steps on random tensors already in memory; the returned callable
    trains ``steps`` more and gives images per second of ``clock`` (``time.thread_time`` on one thread: the CPU
    time of the work, which other processes on a busy machine do not inflate). Its ``warmup_seconds`` is what the
    two warm-up steps took, compiling included."""
    torch.manual_seed(0)
    fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
    batch = variant.batch or batch
    model = EffNet(spec).to(memory_format=fmt).train()
    impl = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[variant.optimizer]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **impl)
    forward = torch.compile(model) if variant.compiled else model
    x = torch.randn(batch, 3, spec.resolution, spec.resolution).contiguous(memory_format=fmt)
    y = torch.randint(0, spec.num_classes, (batch,))
    cpu = torch.device("cpu")

    def run(steps: int) -> float:
        threads = torch.get_num_threads()
        torch.set_num_threads(variant.threads or threads)
        try:
            start, sums = clock(), torch.zeros(2)
            for _ in range(steps):
                with autocast(cpu, variant.bf16):
                    logits = forward(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=0.1)
                if variant.syncs and not torch.isfinite(loss):
                    raise RuntimeError("the benchmark's loss diverged")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if variant.syncs:
                    sums += torch.tensor([loss.item() * batch, (logits.argmax(1) == y).sum().item()])
                else:
                    sums += torch.stack([loss.detach() * batch, (logits.argmax(1) == y).sum()])
            sums.tolist()  # the one read of an epoch without per-step syncs
            return steps * batch / (clock() - start)
        finally:
            torch.set_num_threads(threads)

    started = time.perf_counter()
    run(2)
    run.warmup_seconds = time.perf_counter() - started
    return run


def model_step_rate(spec: NetSpec, batch: int = 64, steps: int = 12, channels_last: bool = True,
                    bf16: bool = False) -> float:
    """Training steps on random tensors already in memory, in images/s."""
    return step_runner(spec, StepVariant(channels_last=channels_last, bf16=bf16), batch)(steps)


def pipeline_rate(feed: Feed, batches: int, device: torch.device | None = None) -> float:
    """The data pipeline alone (gather from the cache, crop, resize, augment), in images/s; with a CUDA ``device``,
    each batch also ends there and the clock waits for the device."""
    def wait() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    gen = torch.Generator().manual_seed(0)
    wait()
    start, seen = time.perf_counter(), 0
    for i, (x, _) in enumerate(feed.batches(gen, shuffle=True)):
        if device is not None:
            x = x.to(device, non_blocking=True)
        seen += len(x)
        if i + 1 == batches:
            break
    wait()
    return seen / (time.perf_counter() - start)


def device_pipeline_rates(feed: Feed, device: torch.device | str, batches: int) -> dict[str, float]:
    """Images/s of the training batches made on the host and copied to ``device`` (today's CPU-side pipeline)
    against the same batches made on ``device`` from the resident cache (:meth:`Feed.on`), interleaved, 3 rounds."""
    device, resident = torch.device(device), feed.on(device)
    return interleaved({"host, copied to the device": lambda: pipeline_rate(feed, batches, device),
                        "on the device (resident cache)": lambda: pipeline_rate(resident, batches, device)}, 3)


def final_choice(out: Path, profile: Profile) -> tuple[NetSpec, str | None, list[str]]:
    """The final model's spec and its trained checkpoint (if any) from the notebook outputs in ``out``; every note
    names a value that is not the study's."""
    notes = []
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
        notes.append(f"no {out}/scaling.json: phi = {profile.final.phi} from the profile, untrained weights")
        spec, checkpoint = scale(BASELINES[base], *abg, profile.final.phi), None
    return spec, checkpoint, notes


def study_choices(study: Study) -> tuple[NetSpec, str | None, float, list[str]]:
    """The final model's spec, its trained checkpoint (if any) and σ, from the study's notebook outputs.

    Returns ``(spec, checkpoint or None, sigma, notes)``; every note names a value that is not the study's.
    """
    out = study.artifacts_dir
    spec, checkpoint, notes = final_choice(out, study.profile)
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
    if torch.cuda.is_available():  # the GPU-resident pipeline against today's host-side one
        rates = device_pipeline_rates(Feed(study.cache, images, final.resolution, batch_size=batch), "cuda", steps)
        host = rates["host, copied to the device"]
        for name, rate in rates.items():
            rows.record(f"data pipeline @{final.resolution}px, {name}", rate, f"{rate / host:.2f}x host")


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


def profile_step(spec: NetSpec, batch: int, steps: int = 5, top: int = 8) -> list[tuple[str, float]]:
    """The operators taking the most self CPU time in ``steps`` of today's training step, with their share."""
    from torch.profiler import ProfilerActivity, profile

    run = step_runner(spec, batch=batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [(e.key, e.self_cpu_time_total / total) for e in ranked]


def step_variants(final: NetSpec, bf16: bool = True) -> tuple[dict[str, tuple[NetSpec, StepVariant]], dict[str, str]]:
    """The training-step variants ``effnb bench --step`` times, each with the network it trains, and the reference
    each is compared with (today's step of that network). ``bf16=False`` leaves out bf16 autocast (where the CPU
    emulates bf16 a round of it takes minutes and can only lose)."""
    today = f"today's step, {final.name}"
    one = {"today's step again (A/A control: the noise)": StepVariant(),
           "AdamW foreach=True": StepVariant(optimizer="foreach"), "AdamW fused=True": StepVariant(optimizer="fused"),
           "no host sync per step": StepVariant(syncs=False), "contiguous (NCHW)": StepVariant(channels_last=False),
           "batch 16": StepVariant(batch=16), "batch 64": StepVariant(batch=64),
           "1 intra-op thread": StepVariant(threads=1), "torch.compile (inductor)": StepVariant(compiled=True)}
    if bf16:
        one["bf16 autocast"] = StepVariant(bf16=True)
    variants = {today: (final, StepVariant()), **{name: (final, v) for name, v in one.items()}}
    references = {name: today for name in one}
    for phi in (0, 2):
        net = scale(BASELINES["C"], *seed_study.GRID_MULTIPLIERS[0], phi)
        variants[f"today's step, phi = {phi}"] = (net, StepVariant())
        variants[f"contiguous (NCHW), phi = {phi}"] = (net, StepVariant(channels_last=False))
        references[f"contiguous (NCHW), phi = {phi}"] = f"today's step, phi = {phi}"
    return variants, references


def bench_step_cpu_time(rows: Rows, final: NetSpec, batch: int, steps: int, rounds: int, bf16: bool) -> None:
    """The variants of ``final``'s step that do not change threads, on one thread, timed by that thread's CPU time
    (not the compiled one, which would compile a second time: about a minute here)."""
    variants, references = step_variants(final, bf16)
    single = {name: (net, replace(v, threads=1)) for name, (net, v) in variants.items()
              if net is final and v.threads is None and not v.compiled}
    runners = {name: step_runner(net, v, batch, time.thread_time) for name, (net, v) in single.items()}
    cpu_bound = interleaved_ratios({name: (lambda r=run: r(steps)) for name, run in runners.items()}, references, rounds)
    print(f"on one thread, images per CPU-second of that thread (what other processes do not inflate), "
          f"{rounds} rounds: median, ratio to today's step (median, lowest-highest)")
    for name, (rate, ratio, low, high) in cpu_bound.items():
        rows.record(f"step on 1 thread, CPU time: {name}" + (f" (batch {single[name][1].batch})" if single[name][1].batch
                                                           else ""), rate, f"{ratio:.2f}x [{low:.2f}-{high:.2f}]")


def bench_step(rows: Rows, final: NetSpec, batch: int, steps: int, rounds: int) -> None:
    """The profile of today's training step, then every variant interleaved against it, with ratios, GFLOP/s against
    the CPU's estimated peak, and 2 single-thread gloo ranks against 1 process with 2 threads."""
    peak, derivation = cpu_peak_gflops()
    print(f"CPU: {cpu_name()}; fp32 peak {derivation}; load average {os.getloadavg()[0]:.2f}")
    print(f"top operators of today's step ({final.name} @{final.resolution}px, batch {batch}), share of self CPU time:")
    for name, share in profile_step(final, batch):
        print(f"  {name:<40} {100 * share:5.1f} %")
    bf16 = bf16_is_fast("cpu")
    if not bf16:
        print("bf16 autocast left out: this CPU has no native bf16 (no AVX-512 BF16 or AMX), so autocast emulates it "
              "at a small fraction of fp32's speed (0.07x on a 2-core AMD EPYC, Zen 3, reports/speed.md)")
    bench_step_cpu_time(rows, final, batch, steps, rounds, bf16)
    variants, references = step_variants(final, bf16)
    runners = {name: step_runner(net, v, batch) for name, (net, v) in variants.items()}
    for name, (_, v) in variants.items():
        if v.compiled:
            print(f"{name}: compiling and the first 2 steps took {runners[name].warmup_seconds:.0f} s (less where "
                  f"inductor's on-disk cache holds an earlier compile; each input size of progressive resizing "
                  f"compiles again)")
    measured = interleaved_ratios({name: (lambda r=run: r(steps)) for name, run in runners.items()}, references, rounds)
    measured.update(interleaved_ratios({"1 process x 2 threads": lambda: rank_throughput(final, 1, 2, steps, batch),
                                        "2 gloo ranks x 1 thread": lambda: rank_throughput(final, 2, 1, steps, batch)},
                                       {"2 gloo ranks x 1 thread": "1 process x 2 threads"}, rounds))
    variants.update({name: (final, StepVariant()) for name in ("1 process x 2 threads", "2 gloo ranks x 1 thread")})
    print(f"interleaved, {rounds} rounds of {steps} steps: img/s (median), ratio to the reference (median, "
          f"lowest-highest), training GFLOP/s (3 x forward FLOPs per image) and share of the peak; "
          f"load average now {os.getloadavg()[0]:.2f}")
    for name, (rate, ratio, low, high) in measured.items():
        net, v = variants[name]
        gflops = 3 * count_flops(net) * rate / 1e9
        ref = references.get(name) or ("1 process x 2 threads" if "ranks" in name else None)
        rows.record(f"step: {name}" + (f" (batch {v.batch})" if v.batch else ""), rate,
                    (f"{ratio:.2f}x [{low:.2f}-{high:.2f}] " if ref else "reference ") +
                    f"{gflops:.1f} GFLOP/s, {100 * gflops / peak:.0f} % of peak")


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
    bench_step(rows, final, batch, steps, rounds)
    return list(rows)


def run_step_bench(profile: str = "cpu", artifacts_dir: str = "artifacts", steps: int = 12, rounds: int = 5,
                   checkpoint: str | None = None) -> list[dict]:
    """Only the training step's variants (:func:`bench_step`) of the final model at the profile's batch: no data."""
    prof = get_profile(profile)
    final, _, notes = final_choice(resolve_artifacts_dir(artifacts_dir), prof)
    if checkpoint is not None:
        final, notes = load_checkpoint(checkpoint)[0].spec, [f"the model is {checkpoint}, as asked"]
    batch = get_recipe(prof.recipe).batch_size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}; {final.name} @{final.resolution}px")
    for note in notes:
        print(f"note: {note}")
    rows = Rows()
    bench_step(rows, final, batch, steps, rounds)
    return list(rows)
