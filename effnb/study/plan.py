"""The study's budget in minutes on this machine: time the training step, plan every notebook, spend what is left.

``effnb study --budget-minutes M`` times the real training and evaluation step for the baselines at the two
ends of the recipe's progressive resizing (:func:`time_steps`), fits seconds per image against forward FLOPs
(:class:`CostModel`) and plans (:func:`make_plan`): the selection notebooks keep the profile's epochs when
they fit :data:`SELECTION_SHARE` of the budget (else fewer), FixRes and 06 get a reserve, :data:`MARGIN` of
the budget is held back, and the final model gets the rest. Its epochs are fixed when notebook 04 starts
(:func:`final_epochs`), from the network actually chosen, timed then, and the minutes actually spent
before, so every minute the earlier notebooks saved goes to it. The plan is ``<artifacts>/plan.json``,
written before training starts and reused as it is by a resumed run (so resuming stays exact);
``--plan FILE`` repeats a published plan.

The work model counts image passes; where the structure is not known before the run (which candidates
survive a halving, which baseline the grid scales) it takes the most expensive case, and the final model
absorbs the difference.
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from effnb.data.cache import ImageCache
from effnb.nn.flops import count_flops
from effnb.nn.model import BASELINES, EffNet, NetSpec
from effnb.nn.scaling import scale
from effnb.seed_study import GRID_MULTIPLIERS
from effnb.study.profiles import Profile
from effnb.study.selection import halvings, rung_budgets
from effnb.train.feed import Feed
from effnb.train.fit import TrainConfig, epoch_generator, make_optimizer, train_one_epoch
from effnb.train.inference import evaluate
from effnb.train.recipes import Recipe
from effnb.utils.atomic import write_json

PLAN_FILE = "plan.json"
PLAN_FORMAT = 1
MARGIN = 0.08  # share of the budget held back for the machine's swings
SELECTION_SHARE = 0.35  # the selection notebooks (02, 03) may use at most this share of the budget
RESERVE_SAFETY = 1.25  # FixRes and 06 are estimated, not timed: their reserve is this much above the estimate
NOTEBOOK_SECONDS = 20.0  # per notebook: kernel start, imports and HTML (an allowance, not measured)
FIXRES_FACTOR = 1.4  # k_test / k_train assumed for the work model (the data's sigma is not known yet)
MAX_FINAL_EPOCHS = 300  # a plan gives the final model at most this many equivalent epochs (the full profile: 150)
STAGES = ("01_data", "02_baselines", "03_grid", "04_scaling", "05_finetune", "06_final")


class PlanError(ValueError):
    """The budget cannot hold the study on this machine (the message says how many minutes it needs)."""


@dataclass(frozen=True)
class Timing:
    """One measured step: a network at an input size, its forward GFLOPs there, and images per second."""

    network: str
    size: int
    gflops: float
    train_img_s: float
    eval_img_s: float


@dataclass(frozen=True)
class CostModel:
    """Seconds per image as ``a + b × forward GFLOPs``, one line for training and one for evaluation."""

    train_a: float
    train_b: float
    eval_a: float
    eval_b: float

    @classmethod
    def fit(cls, timings: list[Timing]) -> CostModel:
        """Least squares over the timings; a line that would fall with FLOPs is replaced by a constant."""
        gflops = np.array([t.gflops for t in timings])

        def line(img_s: np.ndarray) -> tuple[float, float]:
            seconds = 1 / img_s
            if len(set(gflops)) > 1:
                b, a = np.polyfit(gflops, seconds, 1)
                if b > 0 and a >= 0:
                    return float(a), float(b)
                if b > 0:  # through the origin
                    return 0.0, float(seconds @ gflops / (gflops @ gflops))
            return float(seconds.mean()), 0.0

        return cls(*line(np.array([t.train_img_s for t in timings])), *line(np.array([t.eval_img_s for t in timings])))

    def train_seconds(self, gflops: float, n_images: int) -> float:
        return n_images * (self.train_a + self.train_b * gflops)

    def eval_seconds(self, gflops: float, n_images: int) -> float:
        return n_images * (self.eval_a + self.eval_b * gflops)

    def run_seconds(self, config: TrainConfig, k_train: int, gflops: float, n_images: int) -> float:
        """A training run of ``config``: every real epoch at its own input size (progressive resizing)."""
        return sum(self.train_seconds(gflops * (config.epoch_plan(e, k_train)[0] / k_train) ** 2, n_images)
                   for e in range(config.epochs))


@functools.lru_cache(maxsize=512)
def gflops(spec: NetSpec, size: int | None = None) -> float:
    """Forward GFLOPs of one image at ``size`` (default: the spec's resolution)."""
    return count_flops(spec, size or spec.resolution) / 1e9


def time_steps(cache: ImageCache, specs: list[NetSpec], recipe: Recipe, indices: np.ndarray,
               device: torch.device | str = "cpu", batches: int = 8) -> list[Timing]:
    """Time the study's own training step (and evaluation) for each spec at k_train and at the recipe's first size.

    Every timing runs its shapes once untimed first (oneDNN prepares its kernels per shape), and the very first
    one is run twice, so the process's one-time start-up costs are not charged to a network."""
    device = torch.device(device)
    _time_one(cache, specs[0], specs[0].resolution, recipe, indices, device, 1)  # start-up, discarded
    timings = []
    for spec in specs:
        for size in sorted({spec.resolution, round(spec.resolution * recipe.train.size_start)}):
            timings.append(_time_one(cache, spec, size, recipe, indices, device, batches))
    return timings


def _time_one(cache: ImageCache, spec: NetSpec, size: int, recipe: Recipe, indices: np.ndarray,
              device: torch.device, batches: int) -> Timing:
    torch.manual_seed(0)
    model = EffNet(spec).to(device)
    config = replace(recipe.train, epochs=1)
    n = recipe.batch_size * batches
    if len(indices) < 2 * n:
        indices = np.resize(indices, 2 * n)  # a small split: its images twice
    opt, sched = make_optimizer(list(model.parameters()), config, 2 * batches)
    train_seconds = eval_seconds = 0.0
    for part in (indices[:n], indices[n:2 * n]):  # the first pass prepares the shapes, the second is timed
        model.train()
        feed = Feed(cache, part, size, "train", batch_size=recipe.batch_size)
        *_, train_seconds = train_one_epoch(model, feed, opt, sched, None, config, device, drop_last=True,
                                            generator=epoch_generator(0, 0), progress=False, desc="",
                                            total=len(feed), where="while timing")
        start = time.perf_counter()
        evaluate(model, Feed(cache, part, size, "eval", batch_size=recipe.batch_size), device, False)
        eval_seconds = time.perf_counter() - start
    return Timing(spec.name, size, gflops(spec, size), n / train_seconds, n / eval_seconds)


@dataclass(frozen=True)
class Counts:
    """Images the study passes over: the training split, the selection's share, and the evaluation sets."""

    train: int
    select_train: int
    decision: int
    recal: int
    finetune: int
    sweep: int
    test2: int

    @classmethod
    def of(cls, profile: Profile, n_train: int, n_test: int, n_test2: int) -> Counts:
        s, x = profile.selection, profile.fixres
        finetune = min(x.finetune_n or n_train, n_train)
        return cls(train=min(profile.final.train_n or n_train, n_train), select_train=min(s.train_n or n_train, n_train),
                   decision=min(s.eval_n or n_test, n_test), recal=min(x.bn_recal_n, finetune), finetune=finetune,
                   sweep=min(x.sweep_n or n_test, n_test), test2=n_test2)


def _selection_seconds(model: CostModel, recipe: Recipe, rungs: tuple[float, ...], candidates: list[NetSpec],
                       counts: Counts, at_fixres: bool) -> float:
    """One successive halving: on each rung the survivors train (the most expensive ones, as a bound) and are measured."""
    def one(spec: NetSpec, epochs: float) -> float:
        g = gflops(spec)
        train = model.run_seconds(recipe.train_config(spec.resolution, epochs), spec.resolution, g, counts.select_train)
        measure = model.eval_seconds(g, counts.decision)
        if at_fixres:
            measure += model.eval_seconds(g * FIXRES_FACTOR ** 2, counts.recal + counts.decision)
        return train + measure

    costly = sorted(candidates, key=gflops, reverse=True)
    alive, total = len(candidates), 0.0
    for epochs in rung_budgets(rungs, len(candidates) - 1):
        total += sum(one(spec, epochs) for spec in costly[:alive])
        alive = 1 + max(1, (alive - 1) // 2)
    return total


def grid_candidates(base: NetSpec, phi: float) -> list[NetSpec]:
    """The seed's six grid candidates scaled from ``base`` at ``phi``."""
    return [scale(base, *multipliers, phi) for multipliers in GRID_MULTIPLIERS]


def fixres_seconds(model: CostModel, recipe: Recipe, profile: Profile, spec: NetSpec, counts: Counts) -> float:
    """Notebooks 05 and 06 for the final network ``spec``: sweeps, re-estimated BN, fine-tuning, the test2 reads."""
    x, g = profile.fixres, gflops(spec)
    gt = g * FIXRES_FACTOR ** 2
    sweep = sum(model.eval_seconds(g * f ** 2, 4 * counts.sweep + counts.decision + counts.recal) for f in x.sweep_factors)
    k_test = round(spec.resolution * FIXRES_FACTOR)
    tune = (model.run_seconds(recipe.train_config(k_test, x.head_finetune_epochs), k_test, gt, counts.finetune)
            + model.run_seconds(recipe.train_config(k_test, x.finetune_epochs), k_test, gt, counts.finetune))
    steps = model.eval_seconds(gt, counts.recal + 6 * counts.decision)  # and the TTA rule: one pass, then two
    final = model.eval_seconds(gt, 7 * counts.test2)  # 06: five steps and flip TTA (two passes)
    return sweep + tune + steps + final


def make_plan(profile: Profile, recipe: Recipe, model: CostModel, counts: Counts, budget_minutes: float,
              spent_seconds: float = 0.0) -> dict:
    """The plan for ``budget_minutes`` (``spent_seconds`` already gone: decoding and timing); raises PlanError."""
    s = profile.selection
    budget = budget_minutes * 60
    bases = list(BASELINES.values())

    def largest(phi: float) -> NetSpec:  # the costliest network the grid's winner could scale to
        return max((c for b in bases for c in grid_candidates(b, phi)), key=gflops)

    largest_final = largest(profile.final.phi)
    reserve = RESERVE_SAFETY * fixres_seconds(model, recipe, profile, largest_final, counts)

    def selection_seconds(rungs: tuple[float, ...]) -> dict[str, float]:
        grid = max(_selection_seconds(model, recipe, rungs, grid_candidates(b, s.grid_phi), counts, s.at_fixres)
                   for b in bases)
        scaling = sum(_selection_seconds(model, recipe, rungs[-1:], [largest(p)], counts, s.at_fixres)
                      for p in s.scaling_phis)
        return {"02_baselines": _selection_seconds(model, recipe, rungs, bases, counts, s.at_fixres),
                "03_grid": grid, "04_scaling": scaling}

    options = [(*s.halving_rungs, s.epochs)] + [
        tuple(r for r in s.halving_rungs if r < e) + (e,) for e in range(int(np.ceil(s.epochs)) - 1, 0, -1)]
    for rungs in options:
        seconds = selection_seconds(rungs)
        if seconds["02_baselines"] + seconds["03_grid"] <= SELECTION_SHARE * budget:
            break
    overhead = NOTEBOOK_SECONDS * len(STAGES)
    final_seconds = budget * (1 - MARGIN) - spent_seconds - sum(seconds.values()) - reserve - overhead
    one_epoch = model.run_seconds(recipe.train_config(largest_final.resolution, 1), largest_final.resolution,
                                  gflops(largest_final), counts.train)
    if final_seconds < one_epoch:
        need = (budget - final_seconds + one_epoch) / 60
        raise PlanError(f"--budget-minutes {budget_minutes:g} is too small for profile {profile.name!r} on this machine: "
                        f"the study needs at least {np.ceil(need):.0f} minutes here")
    minutes = {"01_data": (spent_seconds + NOTEBOOK_SECONDS) / 60,
               **{k: (v + NOTEBOOK_SECONDS) / 60 for k, v in seconds.items()},
               "05_finetune": (reserve * 0.8 + NOTEBOOK_SECONDS) / 60, "06_final": (reserve * 0.2 + NOTEBOOK_SECONDS) / 60}
    minutes["04_scaling"] += final_seconds / 60
    return {"format": PLAN_FORMAT, "profile": profile.name, "budget_minutes": budget_minutes, "margin": MARGIN,
            "selection": {"halving_rungs": list(rungs[:-1]), "epochs": rungs[-1]},
            "final": {"minutes": final_seconds / 60, "epochs": None},
            "reserve_minutes": reserve / 60, "planned_minutes": minutes, "cost_model": asdict(model)}


def final_epochs(model: CostModel, recipe: Recipe, spec: NetSpec, n_train: int, seconds: float, n_eval: int = 0) -> int:
    """The most whole equivalent epochs of ``spec`` that fit ``seconds`` by ``model`` (this network's own line,
    every real epoch at its progressive-resizing size, each followed by a validation pass over ``n_eval`` images,
    and one more pass to close), between 1 and :data:`MAX_FINAL_EPOCHS`."""
    g = gflops(spec)

    def fits(epochs: int) -> bool:
        config = recipe.train_config(spec.resolution, epochs)
        validation = model.eval_seconds(g, n_eval) * (config.epochs + 1)
        return model.run_seconds(config, spec.resolution, g, n_train) + validation <= seconds

    low, high = 1, MAX_FINAL_EPOCHS  # the answer lies in [low, high]: binary search (the cost grows with epochs)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def apply_plan(profile: Profile, plan: dict | None) -> Profile:
    """``profile`` with the plan's selection epochs and (once fixed) the final model's epochs."""
    if plan is None:
        return profile
    if plan.get("profile") != profile.name:
        raise PlanError(f"the plan is for profile {plan.get('profile')!r}, not {profile.name!r}")
    s = plan["selection"]
    selection = replace(profile.selection, epochs=s["epochs"], halving_rungs=tuple(s["halving_rungs"]))
    final = profile.final if plan["final"]["epochs"] is None else replace(profile.final, epochs=plan["final"]["epochs"])
    return replace(profile, selection=selection, final=final)


def read_plan(artifacts_dir: str | Path) -> dict | None:
    """The study's plan in ``artifacts_dir``, or None (a fixed-epoch run)."""
    path = Path(artifacts_dir) / PLAN_FILE
    return load_plan(path) if path.is_file() else None


def load_plan(path: str | Path) -> dict:
    """A saved plan; a damaged one, or one of another format, is a PlanError naming the file."""
    try:
        plan = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise PlanError(f"{path} is not a plan effnb can read ({exc}): remove it to plan again") from None
    missing = {"format", "profile", "budget_minutes", "selection", "final", "planned_minutes"} - set(
        plan if isinstance(plan, dict) else ())
    if missing:
        raise PlanError(f"{path} is not a plan effnb can read (no {', '.join(sorted(missing))}): remove it to plan again")
    if plan["format"] != PLAN_FORMAT:
        raise PlanError(f"{path} has plan format {plan['format']}, this effnb reads {PLAN_FORMAT}: remove it to plan again")
    return plan


def write_plan(artifacts_dir: str | Path, plan: dict) -> Path:
    """Write ``plan`` as ``<artifacts_dir>/plan.json`` (atomically) and return its path."""
    path = Path(artifacts_dir) / PLAN_FILE
    write_json(path, plan)
    return path


def _estimates(final: dict) -> str:
    """The final model's speed estimates in words: its step timed in 04 and the selection's epochs of it."""
    words = {"timed": "its step timed then", "trained": "the selection's whole epochs of it"}
    by = final.get("epochs_by_estimate") or {"timed": final["epochs"]}
    return " and ".join(f"{words[k]} ({v} epochs)" for k, v in by.items())


def describe_plan(plan: dict) -> str:
    """The plan in a few sentences, for the terminal, notebook 01 and the index."""
    rates = "; ".join(f"{t['network']} at {t['size']} px {t['train_img_s']:.0f} img/s" for t in plan.get("timings", []))
    s, f = plan["selection"], plan["final"]
    rungs = " then ".join(f"{e:g}" for e in (*s["halving_rungs"], s["epochs"]))
    final = (f"{f['epochs']} equivalent epochs of {f['network']} (fixed when 04 started with "
             f"{f['seconds_left'] / 60:.1f} min left for it, by the slower of {_estimates(f)})"
             if f["epochs"] is not None else
             f"about {f['minutes']:.0f} min (its epochs are fixed when 04 starts, from the network chosen and the "
             f"minutes left)")
    timed = (f" The training step was timed on {plan['machine']} ({rates}) in {plan['planning_seconds']:.0f} s, "
             f"counted in the budget." if "timings" in plan else "")
    return (f"Budget {plan['budget_minutes']:g} min.{timed} Selection runs train {rungs} equivalent epoch(s); the final "
            f"model gets {final}; FixRes and 06 have a reserve of {plan['reserve_minutes']:.1f} min; "
            f"{100 * plan['margin']:.0f} % ({plan['budget_minutes'] * plan['margin']:.0f} min) is held back for the "
            f"machine's swings.")


def planned_against_actual(plan: dict, actual_seconds: dict[str, float | None]) -> list[dict]:
    """One row per notebook: planned and actual minutes (actual: papermill's wall time, None if it did not run), and
    a last row for the whole study (its actual minutes include the planning before 01). Once 04 has fixed the final
    epochs, a column between them gives 04 the minutes it was re-planned with then: its time before that and the
    seconds left for the final model (which hold what the earlier notebooks saved)."""
    final = plan["final"]
    before = [actual_seconds.get(stem) for stem in STAGES[:STAGES.index("04_scaling")]]
    replanned = None
    if "seconds_left" in final and None not in before:
        in_04 = final["elapsed_seconds"] - plan.get("planning_seconds", 0) - sum(before)
        replanned = round((in_04 + final["seconds_left"]) / 60, 1)
    rows = []
    for stem in STAGES:
        seconds = actual_seconds.get(stem)
        row = {"notebook": stem, "planned min": round(plan["planned_minutes"][stem], 1)}
        if replanned is not None:
            row["re-planned in 04 min"] = replanned if stem == "04_scaling" else None
        rows.append(row | {"actual min": None if seconds is None else round(seconds / 60, 1)})
    spent = [actual_seconds.get(stem) for stem in STAGES]
    rows.append({"notebook": f"all (budget {plan['budget_minutes']:g})",
                 "planned min": round(sum(plan["planned_minutes"].values()), 1),
                 **({} if replanned is None else {"re-planned in 04 min": None}),
                 "actual min": None if None in spent else round((sum(spent) + plan.get("planning_seconds", 0)) / 60, 1)})
    return rows
