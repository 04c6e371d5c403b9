"""Data-parallel training: real gloo processes on the CPU give what one process gives, resume across rank counts,
and only rank 0 writes.

The networks here have no BatchNorm: on the CPU each rank normalises with its own share's statistics
(SyncBatchNorm refuses CPU tensors), so a BN network on W ranks differs from one process by exactly that.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from effnb.nn.model import BASELINES
from effnb.train import distributed
from effnb.train.experiments import Experiment
from effnb.train.feed import Feed
from effnb.train.fit import TrainConfig, fit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIG = TrainConfig(epochs=2, lr=3e-3, ema_decay=0.8, schedule="linear", size_start=0.75)
BATCH = 16


def tiny_net() -> nn.Module:
    """A BN-free convolutional network: per-rank statistics play no part."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def _feed(cache) -> Feed:
    return Feed(cache, np.arange(0, len(cache), 2), 32, batch_size=BATCH)  # 40 images: 2 batches, 8 left out


def _join(rank: int, world: int, port: int) -> None:
    """What torchrun does for rank ``rank``: its environment, then :func:`distributed.init_from_env`."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    assert distributed.init_from_env()


def _fit_worker(rank: int, world: int, port: int, cache, out: str, start: str | None) -> None:
    _join(rank, world, port)
    model = tiny_net()
    state = None
    if start and rank == 0:  # only rank 0 reads the progress; the others receive it
        saved = torch.load(start, weights_only=False)
        model.load_state_dict(saved["model"])
        state = saved["state"]
    state = fit(model, _feed(cache), CONFIG, seed=5, state=state, progress=False)
    torch.save({"model": model.state_dict(), "history": state.history}, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def run_ranks(world: int, cache, out: Path, start: Path | None = None) -> dict:
    """Train on ``world`` spawned ranks; rank 0's weights and history (each rank saves its own)."""
    mp.spawn(_fit_worker, args=(world, distributed.free_port(), cache, str(out), str(start) if start else None),
             nprocs=world)
    return torch.load(f"{out}.0", weights_only=False)


def assert_same(a: dict, b: dict) -> None:
    for k, value in a.items():
        torch.testing.assert_close(value, b[k], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def one_process(small_cache) -> dict:
    model = tiny_net()
    state = fit(model, _feed(small_cache), CONFIG, seed=5, progress=False)
    return {"model": model.state_dict(), "history": state.history}


def test_two_ranks_train_as_one_process(small_cache, tmp_path, one_process):
    two = run_ranks(2, small_cache, tmp_path / "two")
    assert_same(one_process["model"], two["model"])
    for a, b in zip(one_process["history"], two["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_acc"] == b["train_acc"]
    rank1 = torch.load(tmp_path / "two.1", weights_only=False)
    assert_same(two["model"], rank1["model"])  # every rank holds the same weights


def test_resume_under_another_rank_count_ends_where_one_run_does(small_cache, tmp_path, one_process):
    progress = tmp_path / "progress.pt"

    def save_and_stop(model, state, opt, sched):
        state.optimizer_state, state.scheduler_state = opt.state_dict(), sched.state_dict()
        torch.save({"model": model.state_dict(), "state": state}, progress)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_net(), _feed(small_cache), CONFIG, seed=5, on_epoch_end=save_and_stop, progress=False)
    assert torch.load(progress, weights_only=False)["state"].epoch == 1
    resumed = run_ranks(2, small_cache, tmp_path / "resumed", start=progress)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert_same(one_process["model"], resumed["model"])


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_shares_of_a_batch_are_the_one_process_batch_cut_in_parts(small_cache, mode):
    feed = dataclasses.replace(_feed(small_cache), mode=mode)

    def batches(part):
        gen = torch.Generator().manual_seed(7)  # the same epoch stream on every rank
        return list(feed.batches(gen, shuffle=True, drop_last=True, part=part))

    whole = batches(None)
    for world in (2, 4):
        shares = [batches((r, world)) for r in range(world)]
        for i, (x, y) in enumerate(whole):
            assert all(len(s[i][1]) == BATCH // world for s in shares)  # disjoint, equal shares
            assert torch.equal(torch.cat([s[i][0] for s in shares]), x)  # the same augmentation draws
            assert torch.equal(torch.cat([s[i][1] for s in shares]), y)


def test_batch_that_does_not_split_is_refused(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # the check fit makes on every rank
    with pytest.raises(ValueError, match="divisible by the number of ranks"):
        distributed.check_batches(15, 80, True)
    distributed.check_batches(16, 80, True)
    with pytest.raises(ValueError, match="a last batch of 9"):
        distributed.check_batches(16, 9, False)


def _experiment_worker(rank: int, world: int, port: int, cache, artifacts: str, log: str) -> None:
    from effnb.cli.train import run_ranked

    _join(rank, world, port)
    root = str(Path(artifacts).resolve())
    writes = []

    def audit(event: str, args: tuple) -> None:  # every file or folder this process creates, changes or removes
        if event == "open" and isinstance(args[0], (str, Path)):
            writing = (isinstance(args[1], str) and any(c in args[1] for c in "wax+")) or \
                (isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and str(Path(args[0]).resolve()).startswith(root):
                writes.append(str(args[0]))
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir") and str(args[0]).startswith(root):
            writes.append(f"{event} {args[0]} -> {args[1] if event == 'os.rename' else ''}")

    sys.addaudithook(audit)
    spec = dataclasses.replace(BASELINES["C"], resolution=32)
    idx = tuple(range(len(cache)))
    exp = Experiment(name="ddp", spec=spec, train=TrainConfig(epochs=1, lr=3e-3), train_indices=idx[::2],
                     eval_indices=idx[1::4], batch_size=BATCH)
    for _ in range(2):  # the second time it is read back: rank 0 trains nothing and releases the others
        result = run_ranked(exp, cache, artifacts, "cpu", progress=False)
        assert (result is None) == (rank != 0)
    logged = list(writes)
    Path(f"{log}.{rank}").write_text("\n".join(logged))
    torch.distributed.destroy_process_group()


def test_only_rank_zero_writes(small_cache, tmp_path):
    artifacts = tmp_path / "artifacts"
    mp.spawn(_experiment_worker, args=(2, distributed.free_port(), small_cache, str(artifacts),
                                       str(tmp_path / "writes")), nprocs=2)
    assert (tmp_path / "writes.1").read_text() == ""  # rank 1 created, changed and removed nothing
    rank0 = (tmp_path / "writes.0").read_text().splitlines()
    for name in ("progress.pt", "model.pt", "result.json"):  # each written once, by rank 0
        assert sum(line.startswith("os.rename") and line.endswith(f"/{name}") for line in rank0) == 1, name
    folder, = (artifacts / "experiments").iterdir()
    assert {p.name for p in folder.iterdir()} >= {"model.pt", "result.json"}
    assert not (folder / "progress.pt").exists()
