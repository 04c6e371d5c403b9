"""Model checkpoints that carry everything needed to use them: weights, spec, classes and preprocessing.

As nanoGPT saves ``model_args`` beside the weights, a checkpoint stores the network's spec (including how it was
scaled), so the consumer rebuilds exactly the network the producer trained.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnb.nn.model import EffNet, NetSpec
from effnb.utils.atomic import torch_save

FORMAT = "effnb-checkpoint-v2"  # names the module layout, so a file from another layout is refused clearly
OLD_FORMATS = ("effnb-checkpoint-v1",)
PREPROCESSING_KEYS = ("k_train", "k_test", "k_image_test", "cache_side")


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


def _invalid_parts(data: dict) -> list[str]:
    """What of a checkpoint's metadata is missing or malformed (empty when it is complete)."""
    kinds = {"spec": dict, "classes": list, "preprocessing": dict, "state_dict": dict}
    bad = [k for k, kind in kinds.items() if not isinstance(data.get(k), kind)]
    pre = data.get("preprocessing")
    if isinstance(pre, dict):
        bad += [f"preprocessing.{k}" for k in PREPROCESSING_KEYS
                if not (isinstance(pre.get(k), int) and not isinstance(pre.get(k), bool) and pre[k] > 0)]
    classes = data.get("classes")
    if isinstance(classes, list) and (len(classes) < 2 or not all(isinstance(c, str) for c in classes)):
        bad.append("classes")
    return bad


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint saved by :func:`save_checkpoint`: the model (eval mode) and its metadata.

    Anything missing, malformed or unreadable is a :class:`CheckpointError`; weights that hold NaN or
    infinite values load with a warning.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
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
    bad = _invalid_parts(data)
    if bad:
        raise CheckpointError(f"{path} is an incomplete effnb checkpoint: missing or malformed {', '.join(bad)}")
    try:
        model = EffNet(NetSpec.from_dict(data["spec"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} holds an invalid network spec ({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(data["state_dict"])
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: weights do not match its spec: {str(exc).splitlines()[0]}") from None
    broken = [k for k, v in data["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        warnings.warn(f"checkpoint {path} holds NaN or infinite weights ({len(broken)} tensors, e.g. {broken[0]}): "
                      f"its predictions are meaningless", stacklevel=2)
    model.to(device).eval()
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return model, meta
