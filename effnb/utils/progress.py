"""Progress bars: live widgets in JupyterLab, plain text on stderr in batch runs.

The study runner sets ``EFFNB_BATCH`` for the notebooks it executes. There, bars and per-epoch lines go to
stderr with a long refresh interval: papermill echoes them to the terminal, and the HTML reports leave
stderr out, so no progress widget or stale bar ends up in a report.
"""
from __future__ import annotations

import os
import sys

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

BATCH_ENV = "EFFNB_BATCH"
BATCH_REFRESH_SECONDS = 30.0


def in_batch() -> bool:
    """Whether this process runs inside the study runner (no live frontend)."""
    return bool(os.environ.get(BATCH_ENV))


class BatchTqdm(text_tqdm):
    """A text bar on stderr, refreshed at most every ``BATCH_REFRESH_SECONDS``; ``write`` goes to stderr too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("mininterval", BATCH_REFRESH_SECONDS)
        super().__init__(*args, **kwargs)

    @classmethod
    def write(cls, s: str, file=None, end: str = "\n", nolock: bool = False) -> None:
        super().write(s, file=file or sys.stderr, end=end, nolock=nolock)


tqdm = BatchTqdm if in_batch() else auto_tqdm
