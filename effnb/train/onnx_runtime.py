"""ONNX Runtime as the fast evaluation path, where ``onnxruntime`` is installed (the optional extra ``export``).

ONNX Runtime folds BatchNorm, fuses the activations and picks its own convolution kernels. Whether it beats
PyTorch with BN folded depends on the CPU and the network (on a 2-core Xeon: about even for φ = 2 at 132 px,
slower for φ = 1 at 108 px), so :func:`effnb.train.inference.faster_fp32_path` times both where it matters, and
``effnb bench`` prints both beside the plain path, on your machine; their predictions are the same. The model is exported per call with the TorchScript-based ``torch.onnx.export`` (about 0.3 s, no ``onnxscript`` needed),
its batch dimension dynamic; anything that fails (a missing package, a model the exporter cannot trace) makes
:func:`ort_forward` return None, and the caller falls back to PyTorch.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from collections.abc import Callable

import torch
from torch import nn


def ort_available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def ort_session(model: str | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session of an ONNX file (path) or serialised model (bytes), on ``threads`` threads
    (default: as many as torch), whose idle threads do not spin (they would take the cores from training)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def ort_forward(model: nn.Module, size: int, threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function mapping a float32 CPU batch ``[n, 3, size, size]`` to the logits of eval-mode ``model``, run by ONNX
    Runtime on ``threads`` threads (default: as many as torch), or None where ONNX Runtime cannot run it."""
    if not ort_available():
        return None
    model = model.eval()
    graph = io.BytesIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (torch.zeros(2, 3, size, size),), graph, dynamo=False, input_names=["images"],
                              output_names=["logits"], dynamic_axes={"images": {0: "batch"}})
        session = ort_session(graph.getvalue(), threads)
    except Exception:  # noqa: BLE001 - any failure means: evaluate with PyTorch instead
        return None

    def forward(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"images": images.float().contiguous().numpy()})[0])

    return forward
