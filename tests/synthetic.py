"""Synthetic class-per-folder image sets, a tiny checkpoint and a CLI runner for the tests (no real data needed)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from effnb.cli.commands import main
from effnb.nn.model import BASELINES, EffNet
from effnb.train.checkpoint import save_checkpoint

TINY_SPEC = dataclasses.replace(BASELINES["C"], resolution=32)
CLASSES = ("Cat", "Dog")  # Cat: horizontal stripes, Dog: vertical stripes; random colours, period and phase


def stripes(h: int, w: int, vertical: bool, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image of soft stripes, with noise."""
    period, phase = rng.uniform(6, 14), rng.uniform(0, 2 * np.pi)
    axis = np.arange(w if vertical else h)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * axis / period + phase)
    wave = np.broadcast_to(wave[None, :] if vertical else wave[:, None], (h, w))
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = a + (b - a) * wave[..., None] + rng.normal(0, 8, (h, w, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_image_folder(root: Path, per_class: int = 40, size: tuple[int, int] = (48, 64), seed: int = 0,
                      class_names: dict[str, str] | None = None) -> Path:
    """Write ``per_class`` JPEGs per class under ``root/<class>/`` and return ``root``."""
    rng = np.random.default_rng(seed)
    for label, cls in enumerate(CLASSES):
        folder = root / (class_names or {}).get(cls, cls)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(stripes(*size, vertical=bool(label), rng=rng)).save(folder / f"{i}.jpg", quality=90)
    return root


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """An untrained baseline C at 32 px, tested at 40 px (image 45 px), cache side 64."""
    torch.manual_seed(seed)
    return save_checkpoint(path, EffNet(TINY_SPEC), TINY_SPEC, list(CLASSES),
                           {"k_train": 32, "k_test": 40, "k_image_test": 45, "cache_side": 64})


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``effnb ARGV`` in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
