"""Error paths that had no test: each bad call is refused with its own message.

These are the training loops' (both halves), the input checks' and the PyTorch
checkpoints'. Those of fine-tuning, adaptation and the distributed runs are in
test_finetune.py, test_adaptation.py and test_distributed.py.
"""

import numpy as np
import pytest
import torch

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.checks import check_images_and_labels
from tlcourse.restore import CheckpointError

BACKENDS = pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
BLOCKS = ["block1", "block2", "block3", "head"]


def _optimizer(backend, model):
    if backend is tt:
        return torch.optim.SGD(model.parameters(), lr=0.1)
    import keras

    return keras.optimizers.SGD(0.1)


@BACKENDS
def test_fit_takes_per_block_rates_or_an_optimizer_not_both(backend, tiny_digits):
    (X, y), _ = tiny_digits
    model = backend.build_digit_net(width=4)
    lrs = dict.fromkeys(BLOCKS, 1e-3)
    with pytest.raises(ValueError, match="per-block learning rates or an optimizer, not both"):
        backend.fit(
            model, X, y, lr=lrs, optimizer=_optimizer(backend, model), num_epochs=1, quiet=True
        )


@BACKENDS
@pytest.mark.parametrize(
    "bad", [{"num_epochs": 0}, {"num_epochs": -1}, {"batch_size": 0}, {"batch_size": -8}]
)
def test_fit_needs_positive_epochs_and_batch_size(backend, bad, tiny_digits):
    (X, y), _ = tiny_digits
    with pytest.raises(ValueError, match="num_epochs and batch_size must be positive"):
        backend.fit(backend.build_digit_net(width=4), X[:32], y[:32], quiet=True, **bad)


@pytest.mark.parametrize("shape", [(0, 28, 28), (0, 784), (0, 1, 28, 28)])
def test_an_empty_batch_is_refused(shape):
    with pytest.raises(ValueError, match="Got an empty batch of images"):
        check_images_and_labels(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="Got an empty batch of images"):
        check_images_and_labels(np.zeros(shape, np.float32), np.zeros(0, np.int64))


@BACKENDS
def test_predict_refuses_an_empty_batch(backend):
    with pytest.raises(ValueError, match="Got an empty batch of images"):
        backend.predict(backend.build_digit_net(width=4), np.zeros((0, 28, 28), np.float32))


def test_torch_load_checkpoint_without_optimizer_state(tmp_path):
    model = tt.build_digit_net(width=4)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = tt.save_checkpoint(tmp_path / "weights_only.pt", model)
    with pytest.raises(CheckpointError, match="has no optimizer state to restore"):
        tt.load_checkpoint(path, model, optimizer)
    with pytest.raises(CheckpointError, match="has no scheduler state to restore"):
        tt.load_checkpoint(path, model, scheduler=scheduler)
    # The model alone loads from the same file.
    assert tt.load_checkpoint(path, tt.build_digit_net(width=4)) == {}


def test_torch_load_checkpoint_without_optimizer_state_leaves_the_model_alone(tmp_path):
    tt.set_seed(0)
    path = tt.save_checkpoint(tmp_path / "weights_only.pt", tt.build_digit_net(width=4))
    tt.set_seed(1)
    model = tt.build_digit_net(width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="has no optimizer state"):
        tt.load_checkpoint(path, model, torch.optim.AdamW(model.parameters()))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
