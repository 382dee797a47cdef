"""Every PyTorch function that takes a model runs on the model's device.

There is no GPU here, so the model goes to PyTorch's ``meta`` device (shapes, no data):
a function that computes on the model's device gets as far as reading a number back
(which ``meta`` cannot give), while one that left its inputs on the CPU would fail
earlier with a device mismatch."""

import numpy as np
import pytest
import torch

import tlcourse.torch as tt
from tlcourse.torch.models import device_of

X = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
y = np.arange(8) % 10
READ_BACK = r"(?i)meta tensor"  # "Cannot copy out of meta tensor", ".item() ... meta tensors"


def test_device_of_follows_the_model():
    assert device_of(tt.build_digit_net(width=4)) == torch.device("cpu")
    assert device_of(torch.nn.ReLU()) == torch.device("cpu")  # no parameters
    assert device_of(tt.build_digit_net(width=4).to("meta")) == torch.device("meta")


@pytest.mark.parametrize(
    "call",
    [
        lambda m: tt.predict(m, X),
        lambda m: tt.evaluate(m, X, y),
        lambda m: tt.extract_features(m, X),
        lambda m: tt.fit(m, X, y, num_epochs=1, quiet=True),
        lambda m: tt.adapt(m, X, y, X, num_steps=1, batch_size=4, quiet=True),
        lambda m: tt.adapt(m, X, y, X, method="coral", num_steps=1, batch_size=4, quiet=True),
    ],
    ids=["predict", "evaluate", "extract_features", "fit", "adapt-dann", "adapt-coral"],
)
def test_model_functions_compute_on_the_models_device(call):
    model = tt.build_digit_net(width=4).to("meta")
    with pytest.raises((RuntimeError, NotImplementedError), match=READ_BACK):
        call(model)


def test_adapt_batchnorm_runs_on_the_models_device():
    model = tt.adapt_batchnorm(tt.build_digit_net(width=4).to("meta"), X)
    assert model.block1.bn.running_mean.device == torch.device("meta")


def test_gan_functions_compute_on_the_models_device():
    generator, discriminator = tt.build_generator().to("meta"), tt.build_discriminator()
    with pytest.raises(NotImplementedError, match=READ_BACK):
        tt.generate(generator, [1, 2])
    with pytest.raises(RuntimeError, match=READ_BACK):
        tt.train_gan(generator, discriminator.to("meta"), X, y, num_epochs=1, quiet=True)


def test_cpu_results_do_not_change_with_the_device_handling():
    # Moving to the device the data already is on is a no-op: two identical runs agree
    # bit for bit, and predictions equal a plain forward pass.
    runs = []
    for _ in range(2):
        tt.set_seed(0)
        model = tt.build_digit_net(width=4)
        tt.fit(model, X, y, num_epochs=2, batch_size=4, quiet=True)
        runs.append(tt.predict(model, X))
    np.testing.assert_array_equal(runs[0], runs[1])
    model.eval()
    with torch.no_grad():
        direct = model(torch.as_tensor(X).unsqueeze(1)).numpy()
    np.testing.assert_array_equal(runs[1], direct)
