"""Which parameters train, in which mode, and at which precision: shared by training and BN recalibration."""
from __future__ import annotations

import contextlib

import torch
from torch import nn


def trainable_parameters(model: nn.Module, trainable: str) -> list[nn.Parameter]:
    """Select (and unfreeze only) the parameters a recipe trains."""
    if trainable == "all":
        params = list(model.parameters())
    elif trainable == "head":
        params = list(model.final_bn.parameters()) + list(model.classifier.parameters())
    else:
        raise ValueError(f"unknown trainable set {trainable!r}")
    wanted = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    return params


def set_train_mode(model: nn.Module, trainable: str) -> None:
    """Train mode for what is trained; with ``head`` every other BN keeps its running statistics frozen."""
    if trainable == "head":
        model.eval()
        model.final_bn.train()
    else:
        model.train()


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when asked for, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
