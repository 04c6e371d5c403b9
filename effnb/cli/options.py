"""Options declared once as data: argparse flags and JSON (``--config``) values are both checked from one table."""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def print_json(data, indent: int | None = None) -> None:
    """Print ``data`` as strict JSON: NaN and infinities become null (see :func:`effnb.utils.atomic.json_safe`)."""
    from effnb.utils.atomic import json_safe

    print(json.dumps(json_safe(data), indent=indent, allow_nan=False))


def positive(kind: type) -> Callable[[str], float]:
    """An argparse type for a positive ``kind`` (int or float); a float must also be finite (no inf, no nan)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive {'integer' if kind is int else 'number'}, got {value}")
        return value
    return parse


positive_int, positive_float = positive(int), positive(float)


def finite_float(text: str) -> float:
    """An argparse type for a finite float: text that is no number is argparse's own "invalid float value" error."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


finite_float.__name__ = "float"


def non_negative_float(text: str) -> float:
    """An argparse type for a finite float >= 0 (0 often means "none")."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value:g}")
    return value


non_negative_float.__name__ = "float"  # argparse names the type in its message: "invalid float value: 'x'", as before


@dataclass(frozen=True)
class Option:
    """One option: ``name`` is the dest and the --config key (``--batch-size`` is ``batch_size``).

    ``kind`` is ``bool`` (a switch), ``str``, or a parser from text that raises ``ArgumentTypeError`` or ``ValueError``.
    """
    name: str
    kind: Callable = str
    default: object = None
    help: str | None = None
    choices: Sequence | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def add_to(self, parser: argparse.ArgumentParser, default: object = None) -> None:
        """Add the flag with ``default`` (None: a value given on the command line is never None)."""
        kwargs = {"help": self.help, "default": default}
        if self.kind is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs |= {"type": None if self.kind is str else self.kind, "choices": self.choices}
        parser.add_argument(self.flag, **kwargs)

    def from_json(self, value: object) -> object:
        """``value`` read from a JSON file, checked as the flag checks its text; raises ``ArgumentTypeError``."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise argparse.ArgumentTypeError("must be true or false")
        elif self.kind is str:
            if not isinstance(value, str):
                raise argparse.ArgumentTypeError("must be a string")
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise argparse.ArgumentTypeError("must be a number")
            value = self.kind(str(value))
        if self.choices and value not in self.choices:
            raise argparse.ArgumentTypeError(f"choose one of {', '.join(map(str, self.choices))}")
        return value


DATA_OPTIONS = (
    Option("data_dir", help="class-per-folder images (PetImages); default $EFFNB_DATA_DIR, else download"),
    Option("artifacts_dir", default="artifacts", help="where results, checkpoints and caches go"),
    Option("seed", int, 0),
    Option("profile", default="cpu", choices=("smoke", "cpu", "full")),
)


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option], defaults: bool = True) -> None:
    """Add each option's flag, with its default, or with None (so that only flags given are not None)."""
    for option in options:
        option.add_to(parser, option.default if defaults else None)


def data_args(parser: argparse.ArgumentParser, profile: bool = True) -> None:
    """--data-dir, --artifacts-dir, --seed and (with ``profile``) --profile, with their defaults."""
    add_options(parser, DATA_OPTIONS if profile else DATA_OPTIONS[:3])
