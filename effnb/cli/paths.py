"""Checks of the commands' output paths, made before any work: an output never overwrites or nests in an input."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` both exist and are one file (hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _relation(output: Path, given: Path, inside: bool) -> str | None:
    """How the resolved ``output`` overlaps ``given``: "is", "lies inside" (only with ``inside``), "contains", or None."""
    if output == given or _same_file(output, given):
        return "is"
    if inside and output.is_relative_to(given):
        return "lies inside"
    return "contains" if given.is_relative_to(output) else None


def refuse_overlap(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], flag: str,
                   inside: bool = True) -> None:
    """Raise a one-line ``ValueError`` naming ``flag`` when ``output`` is, contains or (with ``inside``) lies inside
    one of ``inputs``.

    Paths are compared resolved (links followed) and by file identity (hard links), so another spelling of an
    input is refused too; None inputs (options not given) are ignored.
    """
    out = Path(output).expanduser().resolve()
    for given in inputs:
        if given is None:
            continue
        relation = _relation(out, Path(given).expanduser().resolve(), inside)
        if relation:
            raise ValueError(f"{flag} {output} {relation} the input {given}: choose an output outside the inputs")


def check_output_file(output: str | os.PathLike, flag: str) -> Path:
    """``output`` as a file path that can be written (its folder exists and is writable, it is no folder), or a
    one-line ``ValueError`` naming ``flag`` and ``output``."""
    out = Path(output)
    folder = out.parent
    if out.is_dir():
        raise ValueError(f"{flag} {output} is a folder, not a file")
    if not folder.is_dir():
        raise ValueError(f"{flag} {output}: folder {folder} " + ("is a file" if folder.exists() else "does not exist"))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {output}: folder {folder} is not writable")
    return out


def escape_path(path: str) -> str:
    """``path`` on one printable line: backslash and non-printable characters (newline, tab, other controls, bytes
    that are not UTF-8) escaped as in a Python string literal (``\\\\``, ``\\n``, ``\\t``, ``\\xNN``, ``\\uNNNN``)."""
    named = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    out = []
    for c in path:
        if c in named:
            out.append(named[c])
        elif c.isprintable():
            out.append(c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode carries it
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return "".join(out)
