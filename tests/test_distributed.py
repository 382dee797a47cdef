"""Data-parallel fine-tuning: DDP under torchrun and tf.distribute, against one process."""

import subprocess
import sys
import textwrap

import numpy as np
import psutil
import pytest
import torch

from tlcourse import data
from tlcourse.torch import build_digit_net, freeze, freeze_batchnorm, set_seed
from tlcourse.torch.distributed import (
    CHECKPOINT_NAME,
    fit_distributed,
    gradient_bytes_per_step,
    launch,
)

TINY = ["--init", "none", "--width", "4", "--data", "synthetic:128", "--epochs", "1", "--quiet"]


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _leftover_workers():
    """Launchers and workers of this module still alive (there must be none)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "-m tlcourse.torch.distributed" in cmdline and proc.info["status"] != "zombie":
            found.append(cmdline)
    return found


def _tiny_model(seed=0):
    set_seed(seed)
    # BatchNorm kept as it is: batch statistics of a smaller batch would differ.
    return freeze_batchnorm(build_digit_net(width=4))


def test_accumulation_gives_the_same_step_as_the_whole_batch():
    X, y = data.make_synthetic_digits(96, seed=3, use_cache=False)
    whole, accumulated = _tiny_model(), _tiny_model()
    fit_distributed(whole, X, y, num_epochs=2, global_batch_size=32, quiet=True)
    history = fit_distributed(
        accumulated, X, y, num_epochs=2, global_batch_size=32, accumulate=4, quiet=True
    )
    assert history["per_process_batch_size"] == 8 and history["world_size"] == 1
    assert _max_diff(whole.state_dict(), accumulated.state_dict()) < 1e-5
    assert history["loss"][-1] < history["loss"][0]


def test_bad_batch_split_and_frozen_model_are_refused():
    X, y = data.make_synthetic_digits(32, seed=3, use_cache=False)
    with pytest.raises(ValueError, match="divisible"):
        fit_distributed(_tiny_model(), X, y, global_batch_size=30, accumulate=4, quiet=True)
    with pytest.raises(ValueError, match="no trainable"):
        fit_distributed(freeze(_tiny_model()), X, y, quiet=True)


def test_frozen_blocks_are_not_communicated():
    model = build_digit_net(width=4)
    full = gradient_bytes_per_step(model)
    assert full == 4 * sum(p.numel() for p in model.parameters())  # float32: 4 bytes each
    freeze(model, until="block2")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert gradient_bytes_per_step(model) == 4 * trainable < full


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    one = launch([*TINY, "--out", str(tmp_path / "one")], nproc=1, timeout=300)
    two = launch([*TINY, "--out", str(tmp_path / "two")], nproc=2, timeout=300)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["backend"] == "gloo" and two["per_process_batch_size"] == 32
    np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-4)
    diff = _max_diff(
        _weights(tmp_path / "one" / CHECKPOINT_NAME), _weights(tmp_path / "two" / CHECKPOINT_NAME)
    )
    assert diff < 1e-4
    # Rank 0 alone writes: one checkpoint, one log, no temporary files left behind.
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["log.json", CHECKPOINT_NAME]
    assert not _leftover_workers()


def test_failed_run_reports_the_error_and_leaves_no_worker(tmp_path):
    args = [*TINY, "--out", str(tmp_path)]
    args[args.index("none")] = str(tmp_path / "missing.pt")
    with pytest.raises(RuntimeError, match="no such checkpoint"):
        launch(args, nproc=2, timeout=300)
    assert not _leftover_workers()


def test_timeout_stops_every_worker(tmp_path):
    # Long enough for both workers to be training when the launch is stopped.
    args = [*TINY, "--data", "synthetic:256", "--epochs", "5000", "--out", str(tmp_path)]
    with pytest.raises(TimeoutError):
        launch(args, nproc=2, timeout=20)
    assert not _leftover_workers()


def test_launch_checks_its_arguments():
    with pytest.raises(ValueError, match="--out"):
        launch(TINY)
    with pytest.raises(ValueError, match="nproc"):
        launch([*TINY, "--out", "x"], nproc=0)


_MIRRORED = textwrap.dedent(
    """
    import numpy as np
    from tlcourse.keras.distributed import use_logical_cpus, fit_distributed
    assert len(use_logical_cpus(2)) == 2
    import tensorflow as tf
    import tlcourse.keras as tk
    from tlcourse import data
    X, y = data.make_synthetic_digits(128, seed=3, use_cache=False)
    weights = {}
    for name, strategy in (("one", tf.distribute.get_strategy()),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        with strategy.scope():
            tk.set_seed(0)
            model = tk.build_digit_net(width=4)
            tk.freeze_batchnorm(model)
        history = fit_distributed(model, X, y, num_epochs=1, global_batch_size=32, quiet=True)
        assert history["replicas"] == (1 if name == "one" else 2), history
        weights[name] = model.get_weights()
    diff = max(np.abs(a - b).max() for a, b in zip(weights["one"], weights["two"]))
    assert diff < 1e-4, diff
    try:
        use_logical_cpus(3)
    except RuntimeError as exc:
        assert "before TensorFlow runs anything" in str(exc)
    else:
        raise AssertionError("use_logical_cpus(3) after start-up should fail")
    print("ok")
    """
)


def test_mirrored_strategy_over_two_logical_cpus_matches_one_device():
    # Its own process: logical devices can only be set before TensorFlow starts.
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
