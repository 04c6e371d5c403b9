"""Model checkpoints that carry everything needed to use them: weights, spec, classes and preprocessing.

As nanoGPT saves ``model_args`` beside the weights, a checkpoint stores the network's spec (including how it was
scaled), so the consumer rebuilds exactly the network the producer trained.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import torch_save
from .model import NetSpec, build_model

FORMAT = "effnb-checkpoint-v2"  # v2: named MBConv parts (expand/depthwise/se/project) and stage modules
OLD_FORMATS = ("effnb-checkpoint-v1",)


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or not an effnb checkpoint."""


def save_checkpoint(path: str | os.PathLike, model: nn.Module, spec: NetSpec, classes: list[str],
                    preprocessing: dict[str, Any], **extra: Any) -> Path:
    """Save a usable model: ``preprocessing`` holds k_train, k_test, k_image_test and cache_side."""
    path = Path(path)
    torch_save(path, {"format": FORMAT, "spec": spec.to_dict(), "classes": list(classes),
                      "preprocessing": dict(preprocessing),
                      "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **extra})
    return path


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint saved by :func:`save_checkpoint`: the model (eval mode) and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if isinstance(data, dict) and data.get("format") in OLD_FORMATS:
        raise CheckpointError(f"{path} was saved by an earlier effnb ({data['format']}, other module names): "
                              f"run the study again to write it in {FORMAT}")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an effnb checkpoint (expected format {FORMAT!r})")
    model = build_model(NetSpec.from_dict(data["spec"]))
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match its spec: {str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return model, meta
