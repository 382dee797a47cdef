import numpy as np
import pytest
import torch

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.source import SourceRecipe

TINY = SourceRecipe(num_train=200, width=4, num_epochs=1, batch_size=50)


@pytest.mark.slow
def test_source_model_is_cached_and_deterministic(private_cache):
    model = tt.get_source_model(TINY, quiet=True)
    assert TINY.cache_path("torch", ".pt").exists()
    assert str(TINY.cache_path("torch", ".pt")).startswith(str(private_cache))
    cached, history = tt.get_source_model(TINY, with_history=True)
    retrained = tt.get_source_model(TINY, retrain=True, quiet=True)
    for k, v in model.state_dict().items():
        assert torch.equal(cached.state_dict()[k], v)
        assert torch.equal(retrained.state_dict()[k], v)
    assert len(history["loss"]) == 1
    assert not model.training


@pytest.mark.slow
def test_keras_source_model_is_the_pytorch_one_ported(private_cache):
    torch_model, torch_history = tt.get_source_model(TINY, quiet=True, with_history=True)
    model, history = tk.get_source_model(TINY, with_history=True)
    again = tk.get_source_model(TINY)
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert history == torch_history
    X = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)
    logits_torch, logits_keras = tt.predict(torch_model, X), tk.predict(model, X)
    assert np.abs(logits_torch - logits_keras).max() < 1e-4 * max(1, np.abs(logits_torch).max())
    # A retrained PyTorch model (identical: training is seeded) gives the same Keras one.
    retrained = tk.get_source_model(TINY, retrain=True, quiet=True)
    for a, b in zip(model.get_weights(), retrained.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_recipes_have_distinct_cache_paths():
    assert TINY.cache_path("torch", ".pt") != SourceRecipe().cache_path("torch", ".pt")
    assert TINY.cache_path("torch", ".pt").name.startswith("digit_net_torch_")
    assert TINY.cache_path("torch", ".pt").suffix == ".pt"
    assert TINY.cache_path("keras", ".weights.h5").name.endswith(".weights.h5")
    assert TINY.cache_path("torch", ".pt").stem[-12:] == TINY.cache_path("keras", ".h5").stem[-12:]


def test_the_framework_free_module_has_no_string_dispatcher():
    import tlcourse.source

    assert not hasattr(tlcourse.source, "get_source_model")
    assert not hasattr(tlcourse.source, "check_framework")


def test_weights_cached_by_other_code_are_not_reused(monkeypatch):
    import tlcourse.source

    before = TINY.cache_path("torch", ".pt")
    monkeypatch.setattr(tlcourse.source, "source_fingerprint", lambda *m: "0" * 16)
    assert TINY.cache_path("torch", ".pt") != before  # a change to the package: trained again
