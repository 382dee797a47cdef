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


@pytest.fixture
def recorded_scores(monkeypatch):
    """``record(backend, ignore=())`` wraps ``backend.evaluate`` for the rest of the test and
    returns a list that gets one ``(labels, accuracy)`` per call, in call order.

    The accuracy is recomputed independently (argmax of ``backend.predict`` against the
    labels), so a test can check that each cell of a result array holds the score of the
    model that was trained for it, on the right test set, and not an unfilled zero. Calls
    on a model in ``ignore`` (e.g. a judge network) are not recorded.
    """
    import numpy as np

    def record(backend, ignore=()):
        calls = []
        real = backend.evaluate

        def evaluate(model, X, y, **kwargs):
            out = real(model, X, y, **kwargs)
            if not any(model is other for other in ignore):
                y = np.asarray(y)
                predicted = np.argmax(backend.predict(model, X), axis=1)
                calls.append((y.copy(), float(np.mean(predicted == y))))
            return out

        monkeypatch.setattr(backend, "evaluate", evaluate)
        return calls

    return record


@pytest.fixture(scope="session")
def tiny_digits():
    """256 synthetic digits for training and 128 for testing (rendered once per session)."""
    from tlcourse.data import make_synthetic_digits

    X, y = make_synthetic_digits(384, seed=11, use_cache=False)
    return (X[:256], y[:256]), (X[256:], y[256:])
