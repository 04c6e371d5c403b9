"""``effnb bench``: training and data-pipeline throughput on this machine, measured in one run.

Compares the model-only training step (random tensors already in memory) with ``fit`` through the
real data pipeline (cache -> batched crop/resize/augment -> step), so the ratio shows what the data
pipeline costs; also the pipeline alone, evaluation at the FixRes test resolution, and the
variants tried for the step (memory format, batch size, threads).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .engine import Feed, TrainConfig, evaluate, fit
from .fixres import recommended_test_resolution
from .model import BASELINES, NetSpec, build_model
from .profiles import get_profile
from .scaling import scale
from .study import prepare_study


def model_step_rate(spec: NetSpec, batch: int = 64, steps: int = 12, channels_last: bool = True) -> float:
    """Training steps on random tensors already in memory, in images/s."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(spec).to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, spec.resolution, spec.resolution).contiguous(memory_format=fmt)
    y = torch.randint(0, spec.num_classes, (batch,))
    for i in range(3 + steps):
        if i == 3:
            start = time.perf_counter()
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


def run_bench(data_dir: str | None, profile: str = "cpu", artifacts_dir: str = "artifacts", steps: int = 12) -> list[dict]:
    """Measure and print every figure; returns the rows."""
    study = prepare_study(profile, data_dir, artifacts_dir)
    p = get_profile(profile)
    grid_path = Path(artifacts_dir) / "grid.json"  # the study's own alpha, beta, gamma when it has run
    abg = [json.loads(grid_path.read_text())[k] for k in ("alpha", "beta", "gamma")] if grid_path.is_file() else (1.2, 1.05, 1.23)
    final = scale(BASELINES["C"], *abg, p.final_phi)
    rows = []

    def record(what: str, value: float, note: str = "") -> None:
        rows.append({"measurement": what, "img/s": round(value, 1), "note": note})
        print(f"{what:<58} {value:8.1f} img/s  {note}", flush=True)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {p.batch_size}")
    n = steps * p.batch_size
    images = study.splits["train"][:n]
    for spec in (BASELINES["C"], final):
        k = spec.resolution
        model_only = model_step_rate(spec, p.batch_size, steps)
        record(f"model-only train step, {spec.name} @{k}px", model_only)
        torch.manual_seed(0)
        state = fit(build_model(spec), Feed(study.cache, images, k, batch_size=p.batch_size), TrainConfig(epochs=1),
                    progress=False)
        through_fit = state.history[0]["img_per_s"]
        record(f"fit() with the real data pipeline, {spec.name} @{k}px", through_fit,
               f"{100 * through_fit / model_only:.0f} % of model-only")
        record(f"data pipeline alone @{k}px", pipeline_rate(Feed(study.cache, images, k, batch_size=p.batch_size), steps))
    k_test, k_image = recommended_test_resolution(final.resolution, 0.45)
    model = build_model(final)
    ev = evaluate(model, Feed(study.cache, study.splits["test"][:n], k_test, "eval", k_image, batch_size=100),
                  progress=False)
    record(f"evaluation, {final.name} @{k_test}px (FixRes resolution)", ev["img_per_s"])
    base = BASELINES["C"]
    record("variant: contiguous (NCHW) memory format, C @64px", model_step_rate(base, p.batch_size, steps, False))
    for batch in (32, 128):
        record(f"variant: batch {batch}, C @64px", model_step_rate(base, batch, max(3, steps * 64 // batch)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    record("variant: 1 thread, C @64px", model_step_rate(base, p.batch_size, steps))
    torch.set_num_threads(threads)
    return rows
