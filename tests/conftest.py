"""Shared fixtures. Tests run with a private cache directory so they never read or
overwrite the reader's cached data."""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Tests that take seconds, in the files that do not mark them with @pytest.mark.slow
# themselves: file -> test functions (every parameter) or single cases ("name[id]").
# `pytest -m "not slow"` leaves them out for a quick loop; a plain `pytest` (and `make test`)
# runs them. tests/test_project.py checks that every name here still exists.
SLOW_TESTS = {
    "test_checkpoints.py": {
        "test_resume_matches_an_uninterrupted_run",
        "test_torch_resume_is_bitwise_and_refuses_another_plan",
        "test_keras_partial_restore_on_mobilenetv2",
        "test_port_digit_net_both_ways",
    },
    "test_data.py": {
        "test_twenty_thousand_synthetic_digits_in_under_15_seconds",
        "test_mnist_subset",
    },
    "test_features.py": {
        "test_keras_mobilenetv2_features",
        "test_linear_probe_learns_separable_features[keras]",
    },
    "test_frameworks.py": {
        "test_a_few_epochs_lower_the_loss",
        "test_training_repeats_exactly_with_the_same_seed[keras]",
        "test_both_frameworks_reach_similar_accuracy",
        "test_clone_model_copies_weights_and_is_independent[keras]",
    },
    "test_gan.py": {
        "test_gan_learns_a_trivially_conditional_data_set",
        "test_torch_train_gan_drops_the_last_incomplete_batch",
        "test_keras_train_gan_drops_the_last_batch_and_reuses_its_traced_step",
    },
    "test_source.py": {
        "test_source_model_is_cached_and_deterministic",
        "test_keras_source_model_is_cached_and_deterministic",
    },
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = SLOW_TESTS.get(item.path.name, ())
        if item.name in names or getattr(item, "originalname", None) in names:
            item.add_marker(pytest.mark.slow)


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
