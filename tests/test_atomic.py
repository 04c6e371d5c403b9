"""Safe files: atomic writes, permissions, stale temporary files, folder checks, strict JSON, locks."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from effnb.utils.atomic import (
    FolderBusy,
    StorageError,
    ensure_dir,
    json_safe,
    locked,
    remove_stale_temps,
    temp_path,
    torch_save,
    write_json,
    write_text,
)

DEAD_PID = 999_999_999  # above any pid_max: never a running process


def test_writes_replace_whole_files_with_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        torch_save(tmp_path / "b.pt", {"w": torch.ones(2)})
        write_text(tmp_path / "c.html", "<p>hi</p>")
    finally:
        os.umask(old)
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert torch.load(tmp_path / "b.pt")["w"].tolist() == [1.0, 1.0]
    for name in ("a.json", "b.pt", "c.html"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.pt", "c.html"]


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    write_json(tmp_path / "r.json", {"v": 1})
    with pytest.raises(AttributeError, match="pickle"):
        torch_save(tmp_path / "r.json", {"v": lambda: 0})  # fails half-way: a lambda can't be pickled
    assert json.loads((tmp_path / "r.json").read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_stale_temps_of_dead_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "progress.pt"
    dead = tmp_path / f".progress.pt.{DEAD_PID}.0123abcd.tmp"
    dead_folder = tmp_path / f".progress.pt.{DEAD_PID}.4567abcd.tmp"
    legacy = tmp_path / ".progress.pt.k3j9x_2a.tmp"  # mkstemp's name, before pids were recorded
    other = tmp_path / ".model.pt.123.0123abcd.tmp"
    live = temp_path(target)  # this process: alive
    dead.write_bytes(b"x")
    dead_folder.mkdir()
    (dead_folder / "f").write_text("x")
    legacy.write_bytes(b"x")
    other.write_bytes(b"x")
    torch_save(target, {"epoch": 1})
    assert live.exists() and other.exists()
    assert not dead.exists() and not dead_folder.exists() and not legacy.exists()
    live.unlink()
    remove_stale_temps(tmp_path / "missing-folder" / "x")  # nothing to do, no error


def test_json_is_strict() -> None:
    data = {"loss": math.nan, "rows": [math.inf, 1.5, (-math.inf, "a")], "n": 3}
    assert json_safe(data) == {"loss": None, "rows": [None, 1.5, [None, "a"]], "n": 3}
    json.dumps(json_safe(data), allow_nan=False)


def test_ensure_dir_refuses_files_and_unwritable_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ensure_dir(tmp_path / "a" / "b", "artifacts folder").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="artifacts folder .*file is a file, not a folder"):
        ensure_dir(tmp_path / "file", "artifacts folder")
    with pytest.raises(StorageError, match="cannot create artifacts folder .*: Not a directory"):
        ensure_dir(tmp_path / "file" / "sub", "artifacts folder")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only folder (root ignores mode bits)
    with pytest.raises(StorageError, match="is not writable"):
        ensure_dir(tmp_path / "a", "artifacts folder")


def test_lock_makes_a_second_holder_wait_or_stop(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from effnb.utils.atomic import locked\n"
         f"with locked({str(lock)!r}, 'busy'):\n    print('held', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusy, match="another run"):
            with locked(lock, "another run holds it", wait=False):
                pass
        entered = threading.Event()

        def wait_for_it() -> None:
            with locked(lock, "waiting"):
                entered.set()

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        assert not entered.wait(0.5)  # still held by the other process
        holder.stdin.write("\n")
        holder.stdin.flush()
        waiter.join(30)
        assert entered.is_set()
    finally:
        holder.kill()
        holder.wait()


def test_the_same_object_saves_to_the_same_bytes(tmp_path):
    obj = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"k": 1}}
    torch_save(tmp_path / "a.pt", obj)
    torch_save(tmp_path / "sub.pt", obj)  # experiments hash their starting checkpoint's bytes
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub.pt").read_bytes()
