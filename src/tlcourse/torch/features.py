"""Frozen networks as feature extractors, in PyTorch (twin: ``tlcourse.keras.features``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tlcourse.batching import INFERENCE_BATCH_SIZE
from tlcourse.checks import check_images_and_labels
from tlcourse.torch.models import device_of, to_tensor
from tlcourse.torch.training import fit


class _Stop(Exception):
    """Raised by a forward hook to end the forward pass once the layer has run."""


def feature_layers(model: nn.Module) -> list[str]:
    """Names that :func:`extract_features` accepts: every named sub-module of ``model``.

    Taught in :ref:`ch-feature-extraction`.
    """
    return [name for name, _ in model.named_modules() if name]


@torch.no_grad()
def extract_features(
    model: nn.Module, X, *, layer: str | None = None, batch_size: int = INFERENCE_BATCH_SIZE
) -> np.ndarray:
    """Run ``model`` frozen (``eval()``, no gradients) and return the output of ``layer``.

    Taught in :ref:`ch-feature-extraction`.

    The forward pass stops right after ``layer``, so later layers cost nothing. The output
    is flattened to one vector per example: a ResNet's ``avgpool`` gives ``(N, 512, 1, 1)``,
    which becomes ``(N, 512)``; a feature map ``(N, C, H, W)`` becomes ``(N, C*H*W)``.

    Parameters
    ----------
    model : torch.nn.Module
    X : array-like
        Images ``(N, H, W)`` or ``(N, C, H, W)``.
    layer : str, optional
        A name from ``model.named_modules()`` (``"block2"``, ``"layer4"``, ``"avgpool"``);
        ``None`` means everything but the last top-level child (the classifier head).
    batch_size : int, default INFERENCE_BATCH_SIZE (256)

    Returns
    -------
    np.ndarray
        float32 features of shape ``(N, D)``.

    Raises
    ------
    ValueError
        For an unknown layer (the valid names are listed).

    Example
    -------
    >>> F = extract_features(source_model, X_mnist, layer="block3")
    >>> F.shape
    (5000, 64)
    """
    names = feature_layers(model)
    if layer is None:
        children = [name for name, _ in model.named_children()]
        if len(children) < 2:
            raise ValueError("layer=None needs a model with at least two top-level children.")
        layer = children[-2]
    if layer not in names:
        raise ValueError(f"Unknown layer {layer!r}. Valid layers are: {names}.")
    X, _ = check_images_and_labels(X)
    X_t, device = to_tensor(X), device_of(model)
    module = dict(model.named_modules())[layer]
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output.flatten(1).cpu())
        raise _Stop

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(X_t), batch_size):
            try:
                model(X_t[start : start + batch_size].to(device))
            except _Stop:
                pass
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured).numpy()


def build_linear_head(in_features: int, num_classes: int = 10) -> nn.Linear:
    """A linear classifier on ``in_features``-dimensional features (logits out).

    Taught in :ref:`ch-feature-extraction`.
    """
    return nn.Linear(in_features, num_classes)


def fit_linear_probe(features, y, *, num_classes: int = 10, **fit_kwargs):
    """Train a linear classifier (``nn.Linear``) on fixed features; return (head, history).

    Taught in :ref:`ch-feature-extraction`.

    Parameters
    ----------
    features : array-like
        ``(N, D)`` features, e.g. from :func:`extract_features`.
    y : array-like
        Integer labels ``(N,)``.
    num_classes : int, default 10
    **fit_kwargs
        Passed to :func:`tlcourse.torch.fit` (``num_epochs``, ``lr``, ``weight_decay``...).

    Returns
    -------
    (torch.nn.Linear, dict)
    """
    features = np.asarray(features, np.float32)
    if features.ndim != 2:
        raise ValueError(f"Expected features of shape (N, D), got {features.shape}.")
    head = build_linear_head(features.shape[1], num_classes)
    history = fit(head, features, y, **{"quiet": True, **fit_kwargs})
    return head, history


class Frozen(nn.Module):
    """Wrap a module so that it stays frozen inside a larger model that is trained.

    Taught in :ref:`ch-feature-extraction`.

    Its parameters get ``requires_grad=False``, it runs without building a graph, and it
    stays in ``eval()`` mode even when the outer model calls ``train()``, so BatchNorm uses
    and keeps its pretrained running statistics.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        for p in module.parameters():
            p.requires_grad_(False)
        module.eval()

    def train(self, mode: bool = True) -> Frozen:
        self.training = mode
        self.module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)
