"""Classify image files with a checkpoint (what ``effnb predict`` runs).

Files of any size and aspect ratio go through the checkpoint's own evaluation preprocessing, exactly as
``effnb evaluate`` applies it: decoded (turned upright by their EXIF orientation, as a photo viewer shows
them), fitted into the checkpoint's cache side, centre-cropped and resized to k_test by
:class:`effnb.train.feed.Feed` and classified by :func:`effnb.train.inference.predict`, in batches. Files that can't be
read are reported with the reason, never stop the others.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from effnb.cli.evaluate import eval_sizes
from effnb.data.cache import ImageCache
from effnb.data.decode import decode_resized
from effnb.data.index import IMAGE_EXTENSIONS
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import Feed
from effnb.train.inference import predict
from effnb.utils.device import pick_device


@dataclass(frozen=True)
class Prediction:
    """One file's predicted class and probabilities, or the reason it could not be read (``error``)."""

    path: str
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    error: str | None = None


def _folder_images(folder: Path) -> tuple[list[Path], list[Prediction]]:
    """The image files under ``folder`` (hidden files and folders skipped), and a failed :class:`Prediction` for each
    sub-folder that can't be listed: counted, as ``effnb evaluate`` counts it, never silently left out."""
    found, errors = [], []
    for top, dirs, names in os.walk(folder, onerror=errors.append):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top, n) for n in names if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_EXTENSIONS
                  and Path(top, n).is_file()]
    unreadable = [Prediction(str(exc.filename or folder), error=f"unreadable folder ({exc.strerror or exc})")
                  for exc in errors]
    return sorted(found), unreadable


def find_image_files(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Prediction]]:
    """The files to classify: named files as given, folders searched recursively for image extensions.

    Returns the files (in order, without duplicates; hidden files and folders skipped) and a failed
    :class:`Prediction` for each path that does not exist and each folder that can't be listed.
    """
    files: dict[Path, None] = {}
    failed = []
    for given in map(Path, paths):
        if given.is_dir():
            found, unreadable = _folder_images(given)
            files.update(dict.fromkeys(found))
            failed += unreadable
        elif given.is_file():
            files[given] = None
        else:
            failed.append(Prediction(str(given), error="no such file or folder"))
    return list(files), failed


def files_cache(files: Sequence[Path], side: int, classes: Sequence[str]) -> tuple[ImageCache, dict[str, str]]:
    """Decode ``files`` into an in-memory cache of side ``side``; the unreadable ones map to the reason."""
    images, kept, failed = [], [], {}
    for path, result in zip(files, decode_resized(files, side, min_side=1, exif_orientation=True)):
        if isinstance(result, str):
            failed[str(path)] = result
        else:
            images.append(result)
            kept.append(str(path))
    return ImageCache.in_memory(images, kept, side, classes), failed


def predict_files(model: torch.nn.Module, meta: dict, files: Sequence[Path], k_test: int, k_image_test: int,
                  device: torch.device | str = "cpu", batch_size: int = 100,
                  chunk: int = 500) -> Iterator[Prediction]:
    """Classify ``files`` with ``model`` (loaded with its checkpoint ``meta``), ``chunk`` files decoded at a time.

    Yields one :class:`Prediction` per file, in the order of ``files``.
    """
    classes = list(meta["classes"])
    for start in range(0, len(files), chunk):
        part = files[start:start + chunk]
        cache, failed = files_cache(part, meta["preprocessing"]["cache_side"], classes)
        done = {}
        if len(cache):
            feed = Feed(cache, np.arange(len(cache)), k_test, "eval", k_image_test, batch_size=batch_size)
            logits, _ = predict(model, feed, device, progress=False)
            for path, p in zip(cache.paths, logits.softmax(1).tolist()):
                best = int(np.argmax(p))
                done[path] = Prediction(path, classes[best], p[best], dict(zip(classes, p)))
        for path in map(str, part):
            yield done[path] if path in done else Prediction(path, error=failed[path])


def predict_paths(checkpoint: str | os.PathLike, paths: Sequence[str | os.PathLike], k_test: int | None = None,
                  device: str | None = None, batch_size: int = 100) -> tuple[dict, Iterator[Prediction]]:
    """Load ``checkpoint`` and classify every image file under ``paths`` (files and folders).

    Returns the settings used (``checkpoint``, ``classes``, ``k_test``, ``k_image_test``, ``files``) and a
    lazy stream of predictions: missing paths and unreadable files come back as failed predictions.
    """
    model, meta = load_checkpoint(checkpoint)
    k_test, k_image_test = eval_sizes(meta["preprocessing"], k_test)
    files, missing = find_image_files(paths)

    def stream() -> Iterator[Prediction]:
        yield from missing
        yield from predict_files(model, meta, files, k_test, k_image_test, pick_device(device), batch_size)

    settings = {"checkpoint": str(checkpoint), "classes": list(meta["classes"]), "k_test": k_test,
                "k_image_test": k_image_test, "files": len(files) + len(missing)}
    return settings, stream()
