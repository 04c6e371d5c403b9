"""A stop signal to the study ends the notebook process it runs (and its kernel) before the study exits."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from effnb.report.processes import run_child

# The study's stand-in: runs CHILD through run_child and exits as a stopped study would.
PARENT = textwrap.dedent("""
    import sys
    from effnb.report.processes import run_child
    child, folder, mode = sys.argv[1:]
    try:
        run_child([sys.executable, "-c", child, folder, mode], grace=1.0)
    except KeyboardInterrupt:
        sys.exit(130)
""")

# papermill's stand-in: starts a "kernel" in a session of its own (as Jupyter does), announces both pids,
# then works for 60 s and writes its output. A "stubborn" one traps the stop signals and writes its output
# 2 s later anyway, as papermill saves the executed notebook after an interrupted cell.
CHILD = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    folder, mode = sys.argv[1:]
    kernel = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60); "
                               "open(sys.argv[1], 'w').write('kernel')", folder + "/kernel.out"],
                              start_new_session=True)
    def late_write(*_):
        time.sleep(2)
        open(folder + "/child.out", "w").write("late")
        sys.exit(0)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, late_write)
        signal.signal(signal.SIGINT, late_write)
    open(folder + "/pids.tmp", "w").write(f"{os.getpid()} {kernel.pid}")
    os.replace(folder + "/pids.tmp", folder + "/pids")
    time.sleep(60)
    open(folder + "/child.out", "w").write("done")
""")


def _runs(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("signum, mode, code", [(signal.SIGTERM, "plain", 143), (signal.SIGINT, "stubborn", 130)])
def test_a_stop_signal_ends_the_notebook_process_and_its_kernel_first(signum, mode, code, tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(tmp_path), mode],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "pids").is_file():
            assert parent.poll() is None and time.monotonic() < deadline, parent.communicate()
            time.sleep(0.05)
        pids += map(int, (tmp_path / "pids").read_text().split())
        child_pid, kernel_pid = pids
        assert os.getpgid(child_pid) == child_pid  # the child leads a group of its own
        parent.send_signal(signum)
        _, err = parent.communicate(timeout=10)
        assert parent.returncode == code, err
        # the parent exits only once the child's group and the kernel are gone
        assert _group_gone(child_pid) and not _runs(kernel_pid)
        time.sleep(2.5)  # past the stubborn child's late write
        assert not (tmp_path / "child.out").exists() and not (tmp_path / "kernel.out").exists()
    finally:
        for pid in pids:  # leave nothing running when the test fails
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_notebook_that_ends_by_itself_gives_its_exit_status() -> None:
    assert run_child([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    assert run_child([sys.executable, "-c", "pass"]) == 0
