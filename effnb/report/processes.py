"""The child processes the study runs (papermill, and through it a kernel): each started in a session of its own,
and stopped together with its descendants when the study is stopped. Standard library and psutil only."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_SECONDS = 10.0  # how long a stopped notebook may take to end before its processes are killed


def run_child(command: list[str], env: dict[str, str] | None = None, grace: float = GRACE_SECONDS) -> int:
    """Run ``command`` in a new session (its own process group) and return its exit status.

    A SIGTERM or SIGINT to this process while it runs is forwarded to the child's group (its kernels,
    which Jupyter starts in sessions of their own, get SIGTERM); this process waits for them all to end
    (``grace`` seconds, then SIGKILL) and only then stops: KeyboardInterrupt for SIGINT, ``SystemExit(143)``
    for SIGTERM. Outside the main thread signals can't be caught, and the child just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        return subprocess.run(command, env=env, start_new_session=True).returncode
    caught: list[int] = []
    # the handler only notes the signal: an exception raised inside Popen or wait could lose the child
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum)) for sig in STOP_SIGNALS}
    try:
        child = subprocess.Popen(command, env=env, start_new_session=True)
        code = None
        while code is None and not caught:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = child.wait(timeout=0.1)
        if caught:
            stop_tree(child, caught[0], grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not caught:
        return code
    if caught[0] == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + caught[0])


def stop_tree(child: subprocess.Popen, signum: int, grace: float = GRACE_SECONDS) -> None:
    """Send ``signum`` to ``child``'s process group and SIGTERM to its descendants' other groups, wait until
    none of them runs (at most ``grace`` seconds), then SIGKILL what is left and reap ``child``."""
    others = _descendant_groups(child.pid) - {child.pid, os.getpgrp()}
    _killpg(child.pid, signum)
    for group in others:
        _killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=grace)
    groups = {child.pid, *others}
    while any(map(_group_runs, groups)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for group in groups:
        _killpg(group, signal.SIGKILL)
    child.wait()


def _killpg(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _descendant_groups(pid: int) -> set[int]:
    """The process groups of ``pid``'s descendants (psutil comes with ipykernel)."""
    import psutil

    groups = set()
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error, OSError):
                groups.add(os.getpgid(proc.pid))
    return groups


def _group_runs(group: int) -> bool:
    """Whether a process of ``group`` still runs (zombies, which may wait long for their reaper, don't count)."""
    import psutil

    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == group:
                return True
    return False
