"""The process launcher, on its own: plain Python children, no framework, no torchrun."""

import sys
import textwrap
import time

import psutil
import pytest

from tlcourse import launcher

# A parent that starts a grandchild in a session of its own (as torchrun starts its
# workers), prints the grandchild's pid, then waits as long as it is told.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    print("grandchild", child.pid, flush=True)
    time.sleep(float(sys.argv[1]))
    sys.exit(int(sys.argv[2]))
    """
)


def _run(seconds, status, timeout):
    return launcher.run_and_reap(
        [sys.executable, "-c", PARENT, str(seconds), str(status)], timeout=timeout, name="parent"
    )


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_finished_run_returns_its_status_and_output_and_leaves_nothing():
    status, output = _run(0, 3, timeout=30)
    assert status == 3
    pid = int(output.split()[1])
    assert _gone(pid)  # the grandchild was in another session, and is killed all the same


def test_a_timeout_raises_and_kills_every_process():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"parent ran longer than 2 s and was stopped"):
        _run(60, 0, timeout=2)
    assert time.monotonic() - start < 20
    assert launcher.launched_processes("no-such-marker") == []
    # Nothing that carries a launch marker of this test run is left.
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "time.sleep(60)" in " ".join(p.info["cmdline"] or [])
    ]
    assert all(_gone(p.pid) for p in leftovers)


def test_the_marker_reaches_the_children_and_extra_env_is_passed():
    code = "import os; print(os.environ['TLCOURSE_LAUNCH_ID'], os.environ['EXTRA'])"
    status, output = launcher.run_and_reap(
        [sys.executable, "-c", code], timeout=30, env={"EXTRA": "yes"}
    )
    marker, extra = output.split()
    assert status == 0 and len(marker) == 32 and extra == "yes"
