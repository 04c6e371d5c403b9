"""Notebook outputs: the JSON file each notebook writes for the later ones, ``<artifacts_dir>/<name>.json``.

Each notebook ends with :meth:`effnb.study.context.Study.conclude`, which writes its output with
:func:`write_output`; later notebooks (and the index page) read it with :func:`read_output`, as a dict or, for
the outputs read most, as a small typed record (:class:`BaselinesOutput`, :class:`FinetuneOutput`) whose
fields are checked on reading. A missing, damaged or malformed output is an :class:`OutputMissing` that names
the notebook to run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from effnb.utils.atomic import write_json

NOTEBOOKS = {"data": "01_data", "baselines": "02_baselines", "grid": "03_grid", "scaling": "04_scaling",
             "finetune": "05_finetune", "final": "06_final"}


class OutputMissing(FileNotFoundError):
    """An earlier notebook's output is missing, damaged, or lacks a field the reader needs."""


def write_output(artifacts_dir: str | Path, name: str, data: dict) -> Path:
    """Write notebook ``name``'s output to ``<artifacts_dir>/<name>.json`` (atomically)."""
    path = Path(artifacts_dir) / f"{name}.json"
    write_json(path, data)
    return path


def _field(data: Any, path: str, kind: type | tuple[type, ...], notebook: str, where: str = "") -> Any:
    """``data[a][b]...`` for ``path`` ``"a.b"``, checked to be a ``kind``; else an :class:`OutputMissing` naming the
    field (``where`` in front: where ``data`` sits in the output) and the notebook that writes it."""
    kinds, name, value = kind if isinstance(kind, tuple) else (kind,), f"{where}.{path}" if where else path, data
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise OutputMissing(f"field {name!r} is missing: run notebooks/{NOTEBOOKS[notebook]}.ipynb again")
        value = value[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise OutputMissing(f"field {name!r} is not {_KIND_NAMES.get(kinds[0], kinds[0].__name__)} ({value!r}): "
                            f"run notebooks/{NOTEBOOKS[notebook]}.ipynb again")
    return value


_KIND_NAMES = {dict: "an object", str: "a string", int: "a number", float: "a number"}
NUMBER = (int, float)


@dataclass(frozen=True)
class CandidateResult:
    """One trained candidate of a selection: its accuracy on the decision images, its checkpoint, and the whole
    result as written (``raw``: spec, params, FLOPs, curves...), for the plots that take it."""

    accuracy: float
    checkpoint: str
    raw: dict = field(repr=False)

    @classmethod
    def from_dict(cls, data: dict, notebook: str, where: str = "") -> CandidateResult:
        return cls(_field(data, "eval.accuracy", NUMBER, notebook, where), _field(data, "checkpoint", str, notebook, where),
                   data)

    def to_dict(self) -> dict:
        return {**self.raw, "eval": {**self.raw["eval"], "accuracy": self.accuracy}, "checkpoint": self.checkpoint}


@dataclass(frozen=True)
class BaselinesOutput:
    """Notebook 02's output: the chosen baseline's name and every baseline's result (from its longest run)."""

    NAME: ClassVar[str] = "baselines"
    chosen: str
    results: dict[str, CandidateResult]
    rest: dict = field(default_factory=dict, repr=False)  # run, selection, findings: as written

    @property
    def chosen_result(self) -> CandidateResult:
        return self.results[self.chosen]

    @classmethod
    def from_dict(cls, data: dict) -> BaselinesOutput:
        chosen = _field(data, "chosen", str, cls.NAME)
        results = _field(data, "results", dict, cls.NAME)
        if chosen not in results:
            raise OutputMissing(f"field 'results' has no result for the chosen baseline {chosen!r}: run "
                                f"notebooks/{NOTEBOOKS[cls.NAME]}.ipynb again")
        typed = {name: CandidateResult.from_dict(_field(results, name, dict, cls.NAME, "results"), cls.NAME,
                                                 f"results.{name}") for name in results}
        return cls(chosen, typed, {k: v for k, v in data.items() if k not in ("chosen", "results")})

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "results": {n: r.to_dict() for n, r in self.results.items()}, **self.rest}


@dataclass(frozen=True)
class FinetuneVariant:
    """One FixRes fine-tuning variant of notebook 05: its checkpoint and the CPU time its training added."""

    checkpoint: str
    train_seconds: float

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> FinetuneVariant:
        return cls(_field(data, "checkpoint", str, FinetuneOutput.NAME, where),
                   _field(data, "train_seconds", NUMBER, FinetuneOutput.NAME, where))

    def to_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "train_seconds": self.train_seconds}


@dataclass(frozen=True)
class FinetuneOutput:
    """Notebook 05's output: the resolutions, the fine-tuned variants by id, the chosen FixRes step, whether it is
    evaluated with flip TTA (False in outputs that predate that choice), the decisions."""

    NAME: ClassVar[str] = "finetune"
    k_train: int
    k_test: int
    k_image_test: int
    variants: dict[str, FinetuneVariant]
    chosen_step: str
    decisions: dict
    tta: bool = False
    rest: dict = field(default_factory=dict, repr=False)  # run, curves, table, findings...: as written

    @property
    def preprocessing(self) -> dict:
        """The test-time preprocessing of the FixRes resolution (``k_test`` and ``k_image_test`` travel together)."""
        return {"k_test": self.k_test, "k_image_test": self.k_image_test}

    @classmethod
    def from_dict(cls, data: dict) -> FinetuneOutput:
        n = cls.NAME
        variants = {vid: _field(data, f"variants.{vid}", dict, n) for vid in _field(data, "variants", dict, n)}
        return cls(_field(data, "k_train", int, n), _field(data, "k_test", int, n), _field(data, "k_image_test", int, n),
                   {vid: FinetuneVariant.from_dict(v, f"variants.{vid}") for vid, v in variants.items()},
                   _field(data, "chosen_step", str, n), _field(data, "decisions", dict, n),
                   _field(data, "tta", bool, n) if "tta" in data else False,
                   {k: v for k, v in data.items() if k not in cls._TYPED})

    _TYPED: ClassVar[tuple[str, ...]] = ("k_train", "k_test", "k_image_test", "variants", "chosen_step", "decisions", "tta")

    def to_dict(self) -> dict:
        return {"k_train": self.k_train, "k_test": self.k_test, "k_image_test": self.k_image_test,
                "variants": {vid: v.to_dict() for vid, v in self.variants.items()}, "chosen_step": self.chosen_step,
                "decisions": self.decisions, "tta": self.tta, **self.rest}


Typed = TypeVar("Typed", BaselinesOutput, FinetuneOutput)


def read_output(artifacts_dir: str | Path, name: str, required: bool = True,
                kind: type[Typed] | None = None) -> dict | Typed | None:
    """Read notebook ``name``'s output, with a clear error naming the notebook to run first.

    As a dict, or with ``kind`` (:class:`BaselinesOutput`, :class:`FinetuneOutput`) as that record, its fields
    checked. With ``required=False`` a missing output reads as None.
    """
    if kind is not None and kind.NAME != name:
        raise ValueError(f"{kind.__name__} is notebook {kind.NAME!r}'s output, not {name!r}'s")
    path = Path(artifacts_dir) / f"{name}.json"
    if not path.is_file():
        if not required:
            return None
        raise OutputMissing(f"{path} not found: run notebooks/{NOTEBOOKS[name]}.ipynb first (same artifacts_dir)")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise OutputMissing(f"{path} is damaged ({exc}): run notebooks/{NOTEBOOKS[name]}.ipynb again") from None
    if kind is None:
        return data
    if not isinstance(data, dict):
        raise OutputMissing(f"{path} is not a JSON object: run notebooks/{NOTEBOOKS[name]}.ipynb again")
    try:
        return kind.from_dict(data)
    except OutputMissing as exc:
        raise OutputMissing(f"{path}: {exc}") from None
