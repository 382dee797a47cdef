"""Data-parallel fine-tuning: DDP under torchrun and tf.distribute, against one process."""

import contextlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest
import torch

from tlcourse import data, launcher
from tlcourse.launcher import launched_processes
from tlcourse.torch import build_digit_net, freeze, freeze_batchnorm, set_seed
from tlcourse.torch import distributed as distributed
from tlcourse.torch.distributed import (
    CHECKPOINT_NAME,
    fit_distributed,
    gradient_bytes_per_step,
    launch,
    main,
    run_alone,
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


@pytest.mark.parametrize("bad", [{"num_epochs": 0}, {"accumulate": 0}, {"num_epochs": -1}])
def test_torch_fit_distributed_needs_positive_epochs_and_accumulation(bad):
    X, y = data.make_synthetic_digits(32, seed=3, use_cache=False)
    with pytest.raises(ValueError, match="num_epochs and accumulate must be positive"):
        fit_distributed(_tiny_model(), X, y, quiet=True, **bad)


def test_keras_fit_distributed_needs_positive_epochs():
    import tlcourse.keras as tk
    from tlcourse.keras.distributed import fit_distributed as fit_mirrored

    X, y = data.make_synthetic_digits(32, seed=3, use_cache=False)
    with pytest.raises(ValueError, match="num_epochs must be positive"):
        fit_mirrored(tk.build_digit_net(width=4), X, y, num_epochs=0, quiet=True)


def test_keras_fit_distributed_refuses_a_zero_global_batch():
    import tlcourse.keras as tk
    from tlcourse.keras.distributed import fit_distributed as fit_mirrored

    X, y = data.make_synthetic_digits(32, seed=3, use_cache=False)
    with pytest.raises(ValueError, match="global_batch_size"):
        fit_mirrored(tk.build_digit_net(width=4), X, y, global_batch_size=0, quiet=True)


def test_frozen_blocks_are_not_communicated():
    model = build_digit_net(width=4)
    full = gradient_bytes_per_step(model)
    assert full == 4 * sum(p.numel() for p in model.parameters())  # float32: 4 bytes each
    freeze(model, until="block2")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert gradient_bytes_per_step(model) == 4 * trainable < full


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    threads = torch.get_num_threads()
    one = run_alone([*TINY, "--out", str(tmp_path / "one")])  # in this process, no torchrun
    assert torch.get_num_threads() == threads  # put back after its one-thread run
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


@pytest.mark.slow
def test_failed_run_reports_the_error_and_leaves_no_worker(tmp_path):
    args = [*TINY, "--out", str(tmp_path)]
    args[args.index("none")] = str(tmp_path / "missing.pt")
    with pytest.raises(RuntimeError, match="no such checkpoint"):
        launch(args, nproc=2, timeout=300)
    assert not _leftover_workers()


def _workers(marker):
    """The worker processes (not torchrun itself) of the launch with this marker."""
    found = []
    for proc in launched_processes(marker):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.cmdline())
            if (
                "-m tlcourse.torch.distributed" in cmdline
                and "torch.distributed.run" not in cmdline
            ):
                found.append(proc)
    return found


@pytest.mark.slow
def test_timeout_stops_every_worker(tmp_path, monkeypatch):
    # The launch is stopped as if its timeout had run out as soon as both workers exist, not
    # after a fixed wait. A run that ends by itself first is a failure (it trains for 5000
    # epochs), as is one where the workers never appear within the real timeout.
    popen = subprocess.Popen
    seen = {}

    class StopOnceBothWorkersRun(popen):
        def __init__(self, *args, env=None, **kwargs):
            self.marker = (env or {}).get(launcher.MARKER)
            super().__init__(*args, env=env, **kwargs)

        def communicate(self, input=None, timeout=None):
            if self.marker is None:  # not the launch under test
                return super().communicate(input, timeout)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.poll() is None:
                if len(_workers(self.marker)) == 2:
                    seen["workers"] = 2
                    raise subprocess.TimeoutExpired(self.args, timeout)
                time.sleep(0.2)
            if self.poll() is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
            return super().communicate(input)

    monkeypatch.setattr(launcher.subprocess, "Popen", StopOnceBothWorkersRun)
    args = [*TINY, "--data", "synthetic:256", "--epochs", "5000", "--out", str(tmp_path)]
    with pytest.raises(TimeoutError, match="ran longer than 120 s and was stopped"):
        launch(args, nproc=2, timeout=120)
    assert seen == {"workers": 2}
    assert not _leftover_workers()


@pytest.mark.parametrize("spec", ["imagenet", "synthetic:", "synthetic:ten", "synthetic:-5"])
def test_the_script_refuses_an_unknown_data_spec(spec, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)  # one process: no process group
    with pytest.raises(ValueError, match=r"Unknown --data .*valid: 'mnist' or 'synthetic:N'"):
        main(["--init", "none", "--data", spec, "--out", str(tmp_path), "--quiet"])
    assert not (tmp_path / "log.json").exists()


def test_keras_use_logical_cpus_needs_a_positive_count():
    from tlcourse.keras.distributed import use_logical_cpus

    # Checked before TensorFlow's devices are touched, so this is safe in the test process.
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            use_logical_cpus(bad)


def test_launch_checks_its_arguments(monkeypatch):
    with pytest.raises(ValueError, match="--out"):
        launch(TINY)
    with pytest.raises(ValueError, match="--out"):
        run_alone(TINY)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="one process"):
        run_alone([*TINY, "--out", "x"])
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
        # Inference on a mirrored model: one row out per row in, the eager call's values.
        logits = tk.predict(model, X[:40])
        assert logits.shape == (40, 10), logits.shape
        eager = model(X[:40, :, :, None], training=False).numpy()
        assert np.abs(logits - eager).max() < 1e-5
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


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus_matches_one_device():
    # Its own process: logical devices can only be set before TensorFlow starts.
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
