"""Atomic writes: the whole new file or the old one, never a torn one."""

import numpy as np
import pytest

from tlcourse.files import atomic_path


def test_the_file_appears_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "digits.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".npz")
        np.savez_compressed(tmp, X=np.arange(3))
        assert not target.exists()  # not before the block has finished
    with np.load(target) as saved:
        np.testing.assert_array_equal(saved["X"], np.arange(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["digits.npz"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "history.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half of the ne")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_file_lock_excludes_another_process_until_released(tmp_path):
    import subprocess
    import sys

    from tlcourse.files import file_lock

    lock = tmp_path / "cache" / "x.lock"
    probe = (
        "import fcntl, sys\n"
        f"h = open({str(lock)!r}, 'a')\n"
        "try:\n    fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(3)\n"
    )
    with file_lock(lock):
        held = subprocess.run([sys.executable, "-c", probe], timeout=60)
    free = subprocess.run([sys.executable, "-c", probe], timeout=60)
    assert (held.returncode, free.returncode) == (3, 0)
