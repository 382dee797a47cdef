"""Seeding, training and evaluation in PyTorch (twin: ``tlcourse.keras.training``)."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tlcourse.batching import INFERENCE_BATCH_SIZE
from tlcourse.checks import check_images_and_labels
from tlcourse.schedules import SCHEDULES
from tlcourse.torch.checkpoints import load_checkpoint, save_checkpoint
from tlcourse.torch.models import device_of, num_outputs, to_tensor
from tlcourse.torch.optim import make_optimizer


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so that CPU runs repeat exactly.

    Taught in :ref:`ch-what-is-transfer-learning`.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - readers' own code may use the legacy global RNG
    torch.manual_seed(seed)


def fit(
    model: nn.Module,
    X,
    y,
    *,
    num_epochs: int = 5,
    batch_size: int = 128,
    lr: float | Mapping[str, float] = 3e-3,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    optimizer: torch.optim.Optimizer | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    validation_data: tuple | None = None,
    seed: int = 0,
    checkpoint_path: str | os.PathLike | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    quiet: bool = False,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train a classifier on in-memory arrays with mini-batch AdamW and cross-entropy.

    Taught in :ref:`ch-what-is-transfer-learning`.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(N, C, H, W)`` images to logits.
    X, y : array-like
        Images ``(N, H, W)`` (or ``(N, C, H, W)``) and integer labels ``(N,)``.
    num_epochs, batch_size, weight_decay
        The usual; ``weight_decay`` is decoupled (AdamW), as in the Keras twin.
    lr : float or mapping of str to float, default 3e-3
        One learning rate, or one per block (``{"block1": 1e-4, ..., "head": 1e-2}``,
        discriminative learning rates; see :func:`tlcourse.torch.param_groups`).
    schedule : {"cosine", "constant"}, default "cosine"
        ``"cosine"`` decays every parameter group's learning rate from its initial value to
        0 over all steps (per batch), which makes the final model much less sensitive to
        the last few noisy steps; ``"constant"`` keeps it fixed.
    optimizer : torch.optim.Optimizer, optional
        Use this optimiser instead of a new AdamW over the trainable parameters (its
        learning rates are still scheduled).
    penalty : callable, optional
        ``penalty(model)`` returns a scalar tensor added to every batch's loss, e.g.
        ``lambda m: l2sp_penalty(m, source, exclude=["head"])``. The reported ``loss``
        includes it.
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch.
    seed : int, default 0
        Seeds the shuffling order. Epoch ``e`` shuffles with seed ``(seed, e)``, so a
        resumed run sees exactly the batches an uninterrupted one would.
    checkpoint_path : path-like, optional
        A file (conventionally ``*.pt``): after every epoch, save model, optimiser,
        scheduler, epoch and history there with :func:`tlcourse.torch.save_checkpoint`
        (atomically). If the file exists when ``fit`` starts, training resumes from it.
        The Keras twin takes a directory instead (Keras' ``BackupAndRestore``); in both,
        calling ``fit`` again with the same path resumes an interrupted run exactly.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, logs)`` after each epoch (and after the
        checkpoint is written), with ``logs`` the epoch's metrics.
    quiet : bool, default False
        Hide the progress bar.
    desc : str
        Label of the progress bar.

    Returns
    -------
    dict
        ``loss`` and ``accuracy`` per epoch (means over the epoch's batches, in training
        mode), plus ``val_loss`` and ``val_accuracy`` when ``validation_data`` is given.

    Example
    -------
    >>> history = fit(model, X, y, num_epochs=3, quiet=True)
    >>> history["loss"][-1] < history["loss"][0]
    True
    """
    X, y = check_images_and_labels(X, y, num_classes=num_outputs(model))
    if num_epochs < 1 or batch_size < 1:
        raise ValueError("num_epochs and batch_size must be positive.")
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; valid: {SCHEDULES}.")
    device = device_of(model)
    X_t, y_t = to_tensor(X, device), torch.as_tensor(y, device=device)
    steps_per_epoch = -(-len(X_t) // batch_size)
    optimizer, scheduler = make_optimizer(
        model,
        lr,
        num_epochs * steps_per_epoch,
        schedule=schedule,
        weight_decay=weight_decay,
        optimizer=optimizer,
    )
    loss_fn = nn.CrossEntropyLoss()
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    start_epoch = 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        meta = load_checkpoint(checkpoint_path, model, optimizer, scheduler)
        if meta.get("num_epochs") != num_epochs:
            raise ValueError(
                f"{checkpoint_path} belongs to a {meta.get('num_epochs')}-epoch run; "
                f"cannot resume it as a {num_epochs}-epoch run."
            )
        start_epoch, history = int(meta["epoch"]), meta["history"]
    bar = tqdm(
        range(start_epoch, num_epochs),
        desc=desc,
        disable=quiet,
        unit="epoch",
        initial=start_epoch,
        total=num_epochs,
        mininterval=1.0,
    )
    for epoch in bar:
        model.train()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(X_t), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size].to(device)
            logits = model(X_t[idx])
            loss = loss_fn(logits, y_t[idx])
            if penalty is not None:
                loss = loss + penalty(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == y_t[idx]).sum().item()
        history["loss"].append(total_loss / len(X_t))
        history["accuracy"].append(correct / len(X_t))
        if validation_data is not None:
            scores = evaluate(model, *validation_data)
            history.setdefault("val_loss", []).append(scores["loss"])
            history.setdefault("val_accuracy", []).append(scores["accuracy"])
        logs = {k: v[-1] for k, v in history.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path,
                model,
                optimizer,
                scheduler,
                epoch=epoch + 1,
                num_epochs=num_epochs,
                history=history,
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
    return history


@torch.no_grad()
def predict(model: nn.Module, X, *, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """Return the model's logits for ``X`` as a NumPy array, in eval mode without gradients.

    Taught in :ref:`ch-pretraining`.

    Parameters
    ----------
    model : torch.nn.Module
    X : array-like
        Images ``(N, H, W)`` or ``(N, C, H, W)``.
    batch_size : int, default INFERENCE_BATCH_SIZE (256)

    Returns
    -------
    np.ndarray
        Logits of shape ``(N, num_outputs)``.
    """
    X, _ = check_images_and_labels(X)
    X_t, device = to_tensor(X), device_of(model)
    was_training = model.training
    model.eval()
    try:
        out = [
            model(X_t[i : i + batch_size].to(device)).cpu() for i in range(0, len(X_t), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, X, y, *, batch_size: int = INFERENCE_BATCH_SIZE) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(X, y)``, in eval mode.

    Taught in :ref:`ch-what-is-transfer-learning`.

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}``.
    """
    X, y = check_images_and_labels(X, y, num_classes=num_outputs(model))
    logits = torch.as_tensor(predict(model, X, batch_size=batch_size))
    y_t = torch.as_tensor(y)
    loss = nn.functional.cross_entropy(logits, y_t).item()
    return {"loss": loss, "accuracy": (logits.argmax(1) == y_t).float().mean().item()}
