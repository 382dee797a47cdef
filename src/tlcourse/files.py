"""Writing files so that an interrupted run never leaves a torn one (framework-free)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name next to ``path``; when the block succeeds, rename it to ``path``.

    The rename is atomic, so a reader sees either the old file or the whole new one, never
    a half-written one (an interrupted cache write, a killed training run). The temporary
    name keeps the file's suffixes (``.npz``, ``.weights.h5``), which some writers insist
    on. If the block raises, ``path`` is left as it was and the temporary file is removed.

    Example
    -------
    >>> with atomic_path("cache/digits.npz") as tmp:
    ...     np.savez_compressed(tmp, X=X, y=y)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}.tmp.{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    Two processes that share a cache (two chapters run side by side, two notebooks open at
    once) take it around "look in the cache, else compute and store", so the second one
    waits and then finds the first one's result instead of computing it again or reading a
    file still being written. The lock goes with the process, so a killed one never leaves
    it held. On a system without ``fcntl`` (Windows) the block runs unlocked.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
