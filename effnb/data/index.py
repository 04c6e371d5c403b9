"""Finding images in a class-per-folder tree (what is not used is counted with a reason), and exporting
a list of them as symlinks."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from effnb.data.errors import DataError
from effnb.utils.atomic import ensure_dir, remove_stale_temps, temp_path

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class ImageIndex:
    """Image files found under a root, with integer labels into ``classes``, and the files skipped.

    ``listing`` is a hash of the relative path, size and modification time of every entry seen (images
    and skipped files alike): it changes whenever a file is added, removed, moved or rewritten.
    """

    paths: list[Path]
    labels: list[int]
    classes: list[str]
    skipped: list[tuple[Path, str]]
    listing: str


def _has_image_magic(head: bytes) -> bool:
    return (
        head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM"))  # JPEG, PNG, BMP
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
    )


def _skip_reason(path: Path) -> str | None:
    """Why ``path`` can't be an image, by cheap checks (extension, size, header), or None."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image extension ({path.suffix or 'none'})"
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    return None if _has_image_magic(head) else "not an image (unknown header)"


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _entries(class_dir: Path) -> Iterator[tuple[Path, str | None]]:
    """Every entry under ``class_dir``, sub-folders included, with why it is not a candidate image (or None).

    Hidden entries, links to folders (not followed), broken links and unreadable folders are reported,
    never silently dropped.
    """
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(class_dir, onerror=errors.append):
        folder = Path(folder)
        for name in sorted(dirs):
            path = folder / name
            if not _visible(path):
                yield path, "hidden folder"
            elif path.is_symlink():
                yield path, "link to a folder (not followed)"
        dirs[:] = sorted(d for d in dirs if _visible(folder / d) and not (folder / d).is_symlink())
        for name in sorted(files):
            path = folder / name
            if not _visible(path):
                yield path, "hidden file"
            elif path.is_symlink() and not path.exists():
                yield path, "broken link"
            elif not path.is_file():
                yield path, "not a regular file"
            else:
                yield path, None
    for exc in errors:
        yield Path(exc.filename), f"unreadable folder ({exc.strerror or type(exc).__name__})"


def _listing_line(root: Path, path: Path) -> str:
    """What is read for ``path``: a link's target (its path and its file), size, mtime, ctime and inode; a rewrite
    that restores the mtime still changes the ctime, which no user can set."""
    rel = path.relative_to(root).as_posix()
    try:
        st = path.stat()
        target = f"\t-> {path.resolve()}" if path.is_symlink() else ""
        return f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}{target}"
    except OSError:
        return f"{rel}\t-\t-"


def index_images(root: str | os.PathLike) -> ImageIndex:
    """Index a class-per-folder tree in sorted order, skipping (and counting) what is not an image.

    Each folder ``root/<class>/`` is a class; images in its sub-folders belong to it too (as in
    torchvision's ``ImageFolder``). Non-image, hidden, unreadable files and broken links are skipped with a
    reason; so are files directly in ``root``. A class folder whose files are all skipped is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} is a file, not a folder" if root.exists() else f"data folder not found: {root}")
    try:
        top = sorted(root.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read data folder {root}: {exc.strerror or exc}") from None
    class_dirs = [d for d in top if d.is_dir() and _visible(d)]
    if not class_dirs:
        raise DataError(f"no class subfolders in {root}")
    skipped: list[tuple[Path, str]] = [(p, "not in a class folder") for p in top if _visible(p) and p not in class_dirs]
    found: dict[str, list[Path]] = {}
    unusable: list[str] = []
    lines = [_listing_line(root, p) for p, _ in skipped]
    for class_dir in class_dirs:
        n_entries = 0
        for path, reason in _entries(class_dir):
            n_entries += 1
            lines.append(_listing_line(root, path))
            reason = reason or _skip_reason(path)
            if reason is None:
                found.setdefault(class_dir.name, []).append(path)
            else:
                skipped.append((path, reason))
        if n_entries and class_dir.name not in found:
            unusable.append(class_dir.name)
    if unusable:
        theirs = [s for s in skipped if s[0].relative_to(root).parts[0] in unusable]
        raise DataError(f"class folder(s) {unusable} in {root} hold no usable image files ({skip_counts(theirs)})")
    if len(found) < 2:
        raise DataError(f"need at least 2 class folders with images in {root}, found {sorted(found)}")
    classes = sorted(found)
    paths = [p for c in classes for p in sorted(found[c])]
    labels = [k for k, c in enumerate(classes) for _ in found[c]]
    listing = hashlib.sha256("\n".join(sorted(lines)).encode("utf-8", "surrogateescape")).hexdigest()
    return ImageIndex(paths=paths, labels=labels, classes=classes, skipped=skipped, listing=listing)


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0]


def skip_counts(skipped: list[tuple]) -> str:
    """How many were skipped for each kind of reason, e.g. ``empty file: 1; undecodable: 2``."""
    reasons = Counter(_reason_kind(r) for _, r in skipped)
    return "; ".join(f"{kind}: {n}" for kind, n in sorted(reasons.items())) or "none skipped"


def check_empty_target(target: str | os.PathLike) -> Path:
    """``target`` if it is a new or empty folder whose parent can be written; otherwise a one-line error.

    Refusing a non-empty folder keeps an exported split from being mixed with other images.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise DataError(f"target {target} is a file, not a folder")
    if target.is_dir() and any(target.iterdir()):
        raise DataError(f"target folder {target} is not empty: give a new or empty folder")
    ensure_dir(target.parent, "parent folder of the target")
    return target


def link_images(root: str | os.PathLike, rel_paths: list[str], target: str | os.PathLike) -> Path:
    """Symlink ``root/<rel>`` to ``target/<rel>`` for every relative path, into a new or empty ``target``.

    The links are made in a temporary folder renamed to ``target`` at the end: an interrupted export leaves
    no partial folder.
    """
    root, target = Path(root), check_empty_target(target)
    remove_stale_temps(target)
    tmp = temp_path(target, folder=True)
    try:
        for rel in rel_paths:
            link = tmp / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((root / rel).resolve())
        if target.is_dir():
            target.rmdir()  # empty (checked above); rename needs the name free
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target
