"""Decoding image files with Pillow to upright uint8 RGB tensors fitted to a side, in a small thread pool."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

_DECODE_WORKERS = 2
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap height and width
MAX_PIXELS = 40_000_000  # larger images (decompression bombs among them) are skipped, read from the header only
Image.MAX_IMAGE_PIXELS = None  # Pillow's own warning/error would pre-empt ours, which is stricter and checked first


class TooLarge(ValueError):
    """An image whose header states more than :data:`MAX_PIXELS` pixels: skipped without being decoded."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB; 16- and 32-bit grey keep their top 8 bits (not clipped at 255, as ``convert`` does)."""
    if image.mode.startswith("I"):
        wide = np.asarray(image).astype(np.int64)
        image = Image.fromarray(np.clip(wide >> 8, 0, 255).astype(np.uint8))
    return image if image.mode == "RGB" else image.convert("RGB")


def _upright_size(image: Image.Image, exif_orientation: bool) -> tuple[int, int]:
    """(h, w) of ``image`` as displayed: swapped when its EXIF orientation says it is stored rotated."""
    w, h = image.size
    if exif_orientation and image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED:
        return w, h
    return h, w


def _decode(path: Path, exif_orientation: bool = True) -> tuple[torch.Tensor, tuple[int, int]]:
    """Decode to uint8 RGB [3, H, W], turned upright by its EXIF tag (unless ``exif_orientation`` is False),
    with the upright (h, w) of the file. Always at full size: a reduced-scale JPEG decode (``Image.draft``)
    would be faster for large photos but gives other pixels, so a cache would depend on its side's ratio.
    """
    with Image.open(path) as image:  # lazy: reads the header, not the pixels
        w, h = image.size
        if w * h > MAX_PIXELS:
            raise TooLarge(f"too large ({w} x {h} pixels, limit {MAX_PIXELS:,})")
        full = _upright_size(image, exif_orientation)
        image.load()
        if exif_orientation:
            ImageOps.exif_transpose(image, in_place=True)  # no copy when it is already upright
        rgb = _to_rgb(image)
        pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        return pixels.view(rgb.height, rgb.width, 3).permute(2, 0, 1), full


def _fit_size(h: int, w: int, side: int) -> list[int]:
    """(h, w) scaled so the longer side is ``side``, aspect ratio kept."""
    scale = side / max(h, w)
    return [max(1, min(side, round(h * scale))), max(1, min(side, round(w * scale)))]


def _load_resized(path: Path, side: int, min_side: int, exif_orientation: bool) -> torch.Tensor | str:
    """The image resized to fit ``side``, or the reason it is skipped."""
    try:
        image, (h, w) = _decode(path, exif_orientation)
    except TooLarge as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 -- any undecodable file is skipped, never a crash
        message = str(exc).splitlines()[0] if str(exc) else ""
        return f"undecodable ({type(exc).__name__}: {message})"
    if min(h, w) < min_side:
        return f"too small ({h}x{w} < {min_side})"
    return TF.resize(image, _fit_size(h, w, side), antialias=True)


def decode_resized(paths: Sequence[Path], side: int, min_side: int = 32,
                   exif_orientation: bool = True) -> Iterator[torch.Tensor | str]:
    """Decode ``paths`` in order (a small thread pool): each a uint8 ``[3, h, w]`` image whose longer side is
    ``side``, or the reason it can't be used (undecodable, shorter side below ``min_side``, more than
    :data:`MAX_PIXELS` pixels)."""
    with ThreadPoolExecutor(_DECODE_WORKERS) as pool:
        yield from pool.map(lambda path: _load_resized(path, side, min_side, exif_orientation), paths)
