"""The final split `test2`, read exactly once: by notebook 06, after every choice of the study is fixed.

``Study.splits`` holds only ``train`` and ``test``. Notebook 06 gets ``test2`` from :func:`read_test2`, which
records the study's choices (profile, recipe, baseline, α β γ, final model, test resolution, FixRes
models) in ``<artifacts_dir>/test2_read.json`` the first time, and refuses to hand ``test2`` out again under
different choices: a result on ``test2`` after a choice was changed would no longer come from a split that no
decision saw. Reading it again under the same choices (a resumed or re-rendered study) is allowed. Every read is
appended to the record's ``reads`` (when, profile, final model, FixRes step, code), and the publish step keeps
that history in ``reports/models/test2-reads.json``, across artifacts folders (a fresh folder starts a fresh
guard, not a fresh history).
``tests/test_test2_once.py`` checks that no other notebook or module reaches the split.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from effnb.study.context import FIXRES_STEPS
from effnb.utils.atomic import write_json

if TYPE_CHECKING:
    from effnb.study.context import Study

RECORD = "test2_read.json"
REPO = Path(__file__).resolve().parents[2]


class Test2AlreadyUsed(RuntimeError):
    """test2 was read before under other choices."""


def fingerprint(data: object) -> str:
    """A short content hash of JSON-able ``data`` (16 hex digits)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> dict:
    """The git commit of the code that ran, and whether effnb/ or notebooks/ differed from it (None outside git)."""
    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"commit": None, "modified": None}
    diff = git("diff", "--quiet", "HEAD", "--", "effnb", "notebooks")
    return {"commit": head.stdout.strip(), "modified": None if diff is None else diff.returncode != 0}


def experiment_folder(checkpoint: str) -> str:
    """``<name>-<config hash>`` of the experiment a checkpoint belongs to (independent of where artifacts live)."""
    return Path(checkpoint).parent.name


def study_choices(study: Study) -> dict:
    """Every choice notebooks 01-05 fixed, with the profile and the training recipe behind them (``flip_tta`` only
    where 05 chose flip TTA, so a record of a run without that choice keeps its hash)."""
    baselines, grid = study.output("baselines"), study.output("grid")
    scaling, finetune = study.output("scaling"), study.output("finetune")
    return {
        "profile": study.profile.as_dict(),
        "recipe": study.recipe.as_dict(),
        "baseline": baselines["chosen"],
        "alpha_beta_gamma": [grid["alpha"], grid["beta"], grid["gamma"]],
        "final_model": experiment_folder(scaling["checkpoint"]),
        "k_test": finetune["k_test"], "k_image_test": finetune["k_image_test"],
        "fixres_models": {vid: experiment_folder(v["checkpoint"]) for vid, v in finetune["variants"].items()},
        "fixres_step": finetune.get("chosen_step"),
        **({"flip_tta": True} if finetune.get("tta") else {}),
    }


def read_entry(choices: dict, key: str) -> dict:
    """One read of ``test2``: when (UTC), under which choices (their hash, profile, final model, FixRes step), by
    which code."""
    return {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "choices_hash": key,
            "profile": choices["profile"]["name"], "final_model": choices["final_model"],
            "fixres_step": choices["fixres_step"], **({"flip_tta": True} if choices.get("flip_tta") else {}),
            "code": code_version()}


def reads_of(record: dict) -> list[dict]:
    """The reads a guard record lists; a record written before reads were listed is one read of unknown time."""
    if "reads" in record:
        return list(record["reads"])
    choices = record["choices"]
    return [{**read_entry(choices, record["choices_hash"]), "at": None, "code": record.get("code", {})}]


def read_test2(study: Study) -> np.ndarray:
    """The indices of `test2`, for notebook 06 only; raises :class:`Test2AlreadyUsed` if the study's choices
    changed since it was first read. Each read is appended to the record's ``reads``."""
    choices = study_choices(study)
    key = fingerprint(choices)
    record_path = Path(study.artifacts_dir) / RECORD
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record["choices_hash"] != key:
            changed = sorted(k for k in choices if record["choices"].get(k) != choices[k])
            raise Test2AlreadyUsed(
                f"test2 was already read in {study.artifacts_dir} under other choices (changed since: "
                f"{', '.join(changed)}); a new result on it would not come from an unused split. Run the study "
                f"from empty artifacts.")
        record["reads"] = [*reads_of(record), read_entry(choices, key)]
    else:
        record = {"choices_hash": key, "choices": choices, "code": code_version(), "reads": [read_entry(choices, key)]}
    write_json(record_path, record)
    return study.split_indices("test2")


def merge_reads(*histories: list[dict]) -> list[dict]:
    """Several read histories as one, each read once (by time and choices), oldest first (unknown times first)."""
    seen = {(r["at"], r["choices_hash"]): r for history in histories for r in history}
    return sorted(seen.values(), key=lambda r: r["at"] or "")


def _when(read: dict) -> str:
    """A read's time; for a read recovered from a published run's ``final.json`` (no time recorded), the commit that
    published it."""
    if read["at"]:
        return read["at"][:16].replace("T", " ")
    if published := read.get("published_in"):
        return f"not recorded; published {published['date'][:10]} in {published['commit'][:10]}"
    return "not recorded"


def reads_table(reads: list[dict]) -> list[dict]:
    """The reads as a reader's table rows: when, profile, final model, FixRes step, code commit."""
    return [{"read": i, "when (UTC)": _when(r), "profile": r["profile"],
             "final model": r["final_model"], "FixRes step": FIXRES_STEPS.get(r["fixres_step"], r["fixres_step"] or "not recorded")
             + (" + flip TTA" if r.get("flip_tta") else ""),
             "code": ((r.get("code") or {}).get("commit") or "not recorded")[:10]
             + (" (with local changes)" if (r.get("code") or {}).get("modified") else "")}
            for i, r in enumerate(reads, 1)]


def provenance(study: Study) -> dict:
    """What ``final.json`` records about the run: profile, recipe, a hash of both, the code version, the choices."""
    profile, recipe = study.profile.as_dict(), study.recipe.as_dict()
    return {"profile": profile, "recipe": recipe, "profile_recipe_hash": fingerprint({"profile": profile, "recipe": recipe}),
            "code": code_version(), "choices": study_choices(study)}
