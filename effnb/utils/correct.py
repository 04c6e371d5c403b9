"""Per-image correctness as compact strings of ``0``/``1``, so paired comparisons fit in JSON files."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pack_correct", "unpack_correct"]


def pack_correct(correct: Sequence[bool] | np.ndarray) -> str:
    """Per-image correctness as a string of ``0``/``1`` (JSON-friendly, 1 byte per image)."""
    return "".join("1" if c else "0" for c in np.asarray(correct, dtype=bool))


def unpack_correct(packed: str | Sequence[bool] | np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_correct` (arrays and lists of booleans pass through)."""
    if isinstance(packed, str):
        if set(packed) - {"0", "1"}:
            raise ValueError("per-image results must be a string of 0 and 1")
        return np.frombuffer(packed.encode(), dtype=np.uint8) == ord("1")
    return np.asarray(packed, dtype=bool)
