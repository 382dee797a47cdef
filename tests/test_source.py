import numpy as np
import pytest
import torch

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.source import SourceRecipe, get_source_model

TINY = SourceRecipe(num_train=200, width=4, num_epochs=1, batch_size=50)


def test_source_model_is_cached_and_deterministic(private_cache):
    model = get_source_model("torch", TINY, quiet=True)
    assert TINY.cache_path("torch").exists()
    assert str(TINY.cache_path("torch")).startswith(str(private_cache))
    cached, history = tt.get_source_model(TINY, with_history=True)
    retrained = tt.get_source_model(TINY, retrain=True, quiet=True)
    for k, v in model.state_dict().items():
        assert torch.equal(cached.state_dict()[k], v)
        assert torch.equal(retrained.state_dict()[k], v)
    assert len(history["loss"]) == 1
    assert not model.training


def test_keras_source_model_is_cached_and_deterministic():
    model = get_source_model("keras", TINY, quiet=True)
    cached, history = tk.get_source_model(TINY, with_history=True)
    retrained = tk.get_source_model(TINY, retrain=True, quiet=True)
    for a, b, c in zip(
        model.get_weights(), cached.get_weights(), retrained.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert len(history["accuracy"]) == 1


def test_recipes_have_distinct_cache_paths():
    assert TINY.cache_path("torch") != SourceRecipe().cache_path("torch")
    assert TINY.cache_path("torch").suffix == ".pt"
    assert TINY.cache_path("keras").name.endswith(".weights.h5")


def test_unknown_framework():
    with pytest.raises(ValueError, match=r"Unknown framework 'jax'; valid: \('torch', 'keras'\)"):
        get_source_model("jax")


def test_weights_cached_by_other_code_are_not_reused(monkeypatch):
    import tlcourse.source

    before = TINY.cache_path("torch")
    monkeypatch.setattr(tlcourse.source, "source_fingerprint", lambda *m: "0" * 16)
    assert TINY.cache_path("torch") != before  # a change to the package: trained again
