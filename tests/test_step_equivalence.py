"""The faster training step (fused Adam(W), chosen by ``effnb bench --step``) trains as the old step did: the same
losses and weights after a few steps on tiny data, within float tolerance (fused and per-parameter updates round
differently)."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from effnb.nn.model import EffNet
from effnb.train.feed import Feed
from effnb.train.fit import TrainConfig, fit, make_optimizer
from tests.synthetic import TINY_SPEC

fit_module = importlib.import_module("effnb.train.fit")  # the package exports fit(), hiding the module

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def old_step(monkeypatch) -> None:
    """Make ``fit`` build the optimiser it built before the change: torch's per-parameter loop on the CPU."""
    monkeypatch.setattr(fit_module, "fused_optimizers", lambda params: {"foreach": False})


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_the_new_optimiser_is_fused_on_the_cpu(optimizer):
    model = EffNet(TINY_SPEC)
    opt, _ = make_optimizer(list(model.parameters()), TrainConfig(epochs=1, optimizer=optimizer), 5)
    assert opt.defaults["fused"] is True


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_fused_steps_give_the_losses_and_weights_of_the_old_steps(optimizer, monkeypatch):
    """Losses step by step, the function the weights compute (train mode, a fresh batch) and every weight with a real
    gradient agree. A bias right before a BatchNorm (an MBConv's projection without residual) has a true gradient of
    zero: its rounding noise (~1e-8) is scaled to lr-sized steps by Adam in either implementation, differently; the
    next BN removes it (and its running mean follows it), so those are compared through the function, not directly."""
    config = TrainConfig(epochs=1, lr=3e-3, optimizer=optimizer)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 2, (8,), generator=gen)) for _ in range(7)]
    *steps, (fresh, _) = batches

    def train() -> tuple[list[float], dict, torch.Tensor, dict]:
        torch.manual_seed(0)
        model = EffNet(TINY_SPEC).to(memory_format=torch.channels_last).train()
        opt, sched = make_optimizer(list(model.parameters()), config, len(steps))
        losses, grads = [], {}
        for x, y in steps:
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for name, p in model.named_parameters():
                grads[name] = max(grads.get(name, 0.0), p.grad.abs().max().item())
            opt.step()
            sched.step()
            losses.append(loss.item())
        with torch.no_grad():
            logits = model(fresh.contiguous(memory_format=torch.channels_last))
        return losses, dict(model.named_parameters()), logits, grads

    new_losses, new_weights, new_logits, _ = train()
    old_step(monkeypatch)
    old_losses, old_weights, old_logits, grads = train()
    assert len(set(old_losses)) > 1  # the weights moved: the losses differ from step to step
    np.testing.assert_allclose(new_losses, old_losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(new_logits, old_logits, rtol=1e-4, atol=1e-4)
    real = [name for name, g in grads.items() if g > 1e-6]
    assert len(real) > 0.8 * len(grads)
    for name in real:
        torch.testing.assert_close(new_weights[name], old_weights[name], rtol=1e-4, atol=1e-5, msg=name)


def test_fit_with_the_new_step_gives_the_old_losses(small_cache, monkeypatch):
    config = TrainConfig(epochs=2, lr=3e-3, ema_decay=0.8, size_start=0.75)
    feed = Feed(small_cache, np.arange(len(small_cache)), 32, batch_size=16)

    def run() -> list[dict]:
        torch.manual_seed(0)
        return fit(EffNet(TINY_SPEC), feed, config, seed=3, val=feed, progress=False).history

    new_history = run()
    old_step(monkeypatch)
    old_history = run()
    for new, old in zip(new_history, old_history, strict=True):
        for key in ("train_loss", "val_loss"):
            assert new[key] == pytest.approx(old[key], rel=1e-4), key
        for key in ("train_acc", "val_acc"):  # at most one image's prediction changes
            assert new[key] == pytest.approx(old[key], abs=1.01 / len(feed)), key
