"""Shared fixtures. Tests run with a private cache directory so they never read or
overwrite the reader's cached data."""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TLCOURSE_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def tiny_digits():
    """256 synthetic digits for training and 128 for testing (rendered once per session)."""
    from tlcourse.data import make_synthetic_digits

    X, y = make_synthetic_digits(384, seed=11, use_cache=False)
    return (X[:256], y[:256]), (X[256:], y[256:])
