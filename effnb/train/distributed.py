"""Data-parallel training under ``torchrun``: one process per rank, gloo on the CPU, nccl on CUDA.

Every rank draws the same shuffled order of an epoch (from the shared epoch generator) and takes its contiguous
slice of each global batch, so the global batch, and hence the result, do not depend on the number of ranks.
Gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`; with equal slices the average of
the per-rank mean losses is the global mean loss. Rank 0 alone reads and writes files: the other ranks receive
its training state (:func:`sync_start`) and write nothing. Without ``torchrun`` (one process) every function here
is a no-op, so the single-process path is unchanged.

BatchNorm: on CUDA the network's BN layers become :class:`~torch.nn.SyncBatchNorm` (statistics over the global
batch, as one process computes them). ``SyncBatchNorm`` refuses CPU tensors (torch 2.14), so on the CPU each rank
normalises with the statistics of its own slice: with BN, W ranks on the CPU differ from one process by that.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from effnb.nn.model import EffNet, NetSpec

TIMEOUT = timedelta(hours=2)  # rank 0 alone prepares data and evaluates; the others wait that long at most
_started = False  # rank 0 sent its training state in this process (see release_followers)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process is rank 0 (always, without torchrun): the one that writes files and prints."""
    return rank() == 0


def init_from_env(device: torch.device | str | None = None) -> bool:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    A no-op returning False for a single process. The backend is nccl when ``device`` is CUDA, else gloo.
    """
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return True


def local_device(device: torch.device | str) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for CUDA under torchrun, else ``device``."""
    device = torch.device(device)
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def part() -> tuple[int, int] | None:
    """(rank, world size) when distributed, else None: what :meth:`Feed.batches` shards by."""
    return (rank(), world_size()) if world_size() > 1 else None


def shard_slice(n: int, where: tuple[int, int] | None = None) -> slice:
    """The positions of rank ``where[0]``'s contiguous, equal share of ``n`` items (``n`` divisible by the world)."""
    r, w = where or (rank(), world_size())
    if n % w:
        raise ValueError(f"a batch of {n} images does not split into {w} equal shares (one per rank)")
    return slice(r * n // w, (r + 1) * n // w)


def shard(batch_indices: np.ndarray) -> np.ndarray:
    """This rank's share of a global batch's image indices (all of them for one process)."""
    return batch_indices[shard_slice(len(batch_indices))] if world_size() > 1 else batch_indices


def check_batches(batch_size: int, n_images: int, drop_last: bool) -> None:
    """Refuse a global batch (or a lone partial batch) that does not split into equal shares, one per rank."""
    w = world_size()
    if batch_size % w or (not drop_last and n_images % batch_size % w):
        raise ValueError(f"the global batch size ({batch_size}, and a last batch of {n_images % batch_size or batch_size}) "
                         f"must be divisible by the number of ranks ({w}): choose a batch size that is")


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (with SyncBatchNorm on CUDA); ``model`` itself for one process."""
    if world_size() == 1:
        return model
    # forward_sync_buffers=False: only rank 0's BN statistics are ever used (it alone evaluates and saves); sending
    # them at every step costs a collective for nothing
    if device.type == "cuda":  # SyncBatchNorm needs GPU tensors; it shares the BN layers' parameters and buffers
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index], forward_sync_buffers=False)
    return DistributedDataParallel(model, forward_sync_buffers=False)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper, its SyncBatchNorm layers back to plain BatchNorm2d (same tensors)."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    for name, child in list(model.named_children()):
        if isinstance(child, nn.SyncBatchNorm):
            plain = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats)
            plain.load_state_dict(child.state_dict())
            plain.to(next(child.parameters(), child.running_mean).device).train(child.training)
            if child.affine:
                plain.weight, plain.bias = child.weight, child.bias  # the optimizer's parameters
            setattr(model, name, plain)
        else:
            unwrap(child)
    return model


def barrier() -> None:
    """Wait for every rank (nothing for one process)."""
    if world_size() > 1:
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself for one process)."""
    if world_size() == 1:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_start(model: nn.Module, state: Any) -> Any:
    """Give every rank rank 0's weights and training state; None on the other ranks when rank 0 has nothing to train."""
    global _started
    if is_main():
        _started = True
    payload = broadcast_object((state, model.state_dict()) if is_main() else None)
    if payload is None:
        return None
    if not is_main():
        model.load_state_dict(payload[1])
    return payload[0]


def join(model: nn.Module, state: Any, batch_size: int, n_images: int) -> Any:
    """:func:`sync_start`, then check (on every rank alike) that the batches split evenly over the ranks."""
    state = sync_start(model, state)
    if state is not None:
        check_batches(batch_size, n_images, n_images >= batch_size)
    return state


def release_followers() -> None:
    """Rank 0, after an experiment: tell ranks waiting in :func:`sync_start` that it trained nothing (if so)."""
    global _started
    if world_size() > 1 and is_main() and not _started:
        broadcast_object(None)
    _started = False


def all_reduce_sum(*values: float) -> list[float]:
    """The sums over ranks of a few numbers (the values themselves for one process)."""
    if world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` averaged over ranks, in place (unchanged for one process)."""
    if world_size() > 1:
        dist.all_reduce(tensor)
        tensor /= world_size()
    return tensor


def all_finite(loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every rank, so that all ranks stop together when one diverges."""
    finite = torch.isfinite(loss.detach()).to(torch.float32)
    if world_size() > 1:
        finite = finite.cpu() if dist.get_backend() == "gloo" else finite
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _throughput_worker(r: int, spec: NetSpec, ranks: int, threads: int, steps: int, batch: int, port: int, out: str) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=ranks)
    torch.manual_seed(0)
    model = wrap_model(EffNet(spec).to(memory_format=torch.channels_last).train(), torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch // ranks, 3, spec.resolution, spec.resolution).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, spec.num_classes, (batch // ranks,))
    for i in range(3 + steps):
        if i == 3:  # three warm-up steps
            dist.barrier()
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    dist.barrier()
    if r == 0:
        with open(out, "w") as f:
            f.write(str(steps * batch / (time.perf_counter() - start)))
    dist.destroy_process_group()


def rank_throughput(spec: NetSpec, ranks: int, threads: int, steps: int = 8, batch: int = 64) -> float:
    """Training images/s (all ranks together) of ``ranks`` gloo processes with ``threads`` threads each, on random
    tensors, global batch ``batch``: e.g. 1 x 2 threads against 2 ranks x 1 thread on two cores."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rate")
        mp.spawn(_throughput_worker, args=(spec, ranks, threads, steps, batch, free_port(), out), nprocs=ranks)
        with open(out) as f:
            return float(f.read())
