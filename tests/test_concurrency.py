"""Two real processes on one artifacts folder: the second waits for the first and reuses its work."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import make_image_folder

from effnb.data.cache import build_cache

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Run by each process: build (or reuse) the cache, then run (or wait for, or read back) one tiny experiment.
# With SLOW set to "decode" or "train", the process announces that it is decoding (or training) and holds
# on until the file GO exists, so that the other process arrives while it is at it.
WORKER = textwrap.dedent("""
    import dataclasses, json, os, sys, time
    import effnb.data.decode as decode
    from effnb.data.cache import build_cache
    import effnb.train.experiments as experiments
    from effnb.train.fit import TrainConfig
    from effnb.nn.model import BASELINES

    images, artifacts, slow, go = sys.argv[1:]

    def hold(word):
        if not os.path.exists(go):
            print(word, flush=True)
        deadline = time.time() + 120
        while not os.path.exists(go) and time.time() < deadline:
            time.sleep(0.05)

    if slow == "decode":
        load = decode._load_resized
        decode._load_resized = lambda *args: hold("decoding") or load(*args)
    fit = experiments.fit
    def announced_fit(*args, **options):
        print("fit called", flush=True)
        if slow == "train":
            hold("training")
        return fit(*args, **options)
    experiments.fit = announced_fit
    cache = build_cache(images, artifacts + "/cache", side=64, min_side=16)
    idx = tuple(range(len(cache)))
    spec = dataclasses.replace(BASELINES["C"], resolution=32)
    exp = experiments.Experiment(name="tiny", spec=spec, train=TrainConfig(epochs=2),
                                 train_indices=idx, eval_indices=idx[:16], batch_size=16, data_key=cache.fingerprint)
    result = experiments.run_experiment(exp, cache, artifacts, progress=False)
    print("RESULT " + json.dumps({"fingerprint": cache.fingerprint, "checkpoint": result["checkpoint"],
                                  "epochs": len(result["history"]), "accuracy": result["eval"]["accuracy"]}))
""")


def _start(script: Path, images: Path, artifacts: Path, slow: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(images), str(artifacts), slow, str(artifacts / "GO")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_until(stream, text: str) -> str:
    """Lines of ``stream`` up to the first that holds ``text`` (all of it if none does: the process ended)."""
    seen = ""
    for line in stream:
        seen += line
        if text in line:
            break
    return seen


def _finish(process: subprocess.Popen) -> tuple[dict, str, str]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    result = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(result[len("RESULT "):]), out, err


@pytest.mark.parametrize("slow, waiting", [
    ("decode", "waiting for another run that is building the image cache"),
    ("train", "waiting for another run that is training it"),
])
def test_second_process_waits_then_reuses(slow: str, waiting: str, tmp_path: Path) -> None:
    images = make_image_folder(tmp_path / "images", per_class=12, seed=3)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    artifacts = tmp_path / "artifacts"
    first = _start(script, images, artifacts, slow)
    second = None
    try:
        assert slow[:5] in _read_until(first.stdout, "decoding" if slow == "decode" else "training")
        second = _start(script, images, artifacts, "none")
        seen = _read_until(second.stderr, waiting)  # the second run arrived while the first is at it
        (artifacts / "GO").touch()
        a, _, _ = _finish(first)
        b, out_b, err_b = _finish(second)
    finally:
        (artifacts / "GO").touch()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
    assert waiting in seen
    if slow == "decode":
        assert "[reused]" in out_b  # it decoded nothing itself
    else:
        assert "fit called" not in out_b  # it trained nothing itself
    assert a == b and a["epochs"] == 2  # the same result, trained once
    fresh = build_cache(images, tmp_path / "fresh", side=64, min_side=16)
    assert a["fingerprint"] == fresh.fingerprint  # the first run's pixels were not disturbed
    cached = np.memmap(next((artifacts / "cache").glob("images-*.u8")), dtype=np.uint8, mode="r",
                       shape=fresh.images.shape)
    np.testing.assert_array_equal(cached, fresh.images)
    torch.load(a["checkpoint"], weights_only=True)
    assert not list(artifacts.rglob("*.tmp"))
