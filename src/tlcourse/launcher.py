"""Run a command whose processes cannot outlive the call (framework-free).

:func:`tlcourse.torch.distributed.launch` runs ``torchrun`` with it. ``torchrun`` starts
each worker in a session of its own, so killing the launcher's process group would leave
the workers running. Every process of a launch inherits a marker in its environment
instead, and whatever carries the marker is killed when the call ends, however it ends
(success, error, timeout, interrupt).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Sequence

import psutil

MARKER = "TLCOURSE_LAUNCH_ID"


def run_and_reap(
    command: Sequence[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    name: str = "the command",
) -> tuple[int, str]:
    """Run ``command``, wait at most ``timeout`` seconds, then kill every process it started.

    Parameters
    ----------
    command : sequence of str
    timeout : float
        Seconds before the whole launch is killed.
    env : dict, optional
        Extra environment variables (on top of this process's environment).
    name : str
        What the command is, for the timeout message (e.g. ``"torchrun"``).

    Returns
    -------
    (int, str)
        The exit status and the output (stdout and stderr together).

    Raises
    ------
    TimeoutError
        If the command runs longer than ``timeout``; no process of it is left.
    """
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {}), MARKER: marker},
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(f"{name} ran longer than {timeout} s and was stopped.") from exc
    finally:
        kill_launched(proc, marker)
    return proc.returncode, output


def launched_processes(marker: str) -> list[psutil.Process]:
    """Processes whose environment carries this launch's marker (launcher and workers)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER) == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone already, or not ours to read
    return found


def kill_launched(proc: subprocess.Popen, marker: str) -> None:
    """Kill the launcher ``proc`` and every process of its launch, then reap them."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # first the launcher: it starts no more workers
    proc.wait()
    victims = launched_processes(marker)
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(victims, timeout=10)
