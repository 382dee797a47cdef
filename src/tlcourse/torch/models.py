"""The course's digit network in PyTorch (its twin is ``tlcourse.keras.models``)."""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from tlcourse.checks import check_positive_ints

BLOCK_NAMES = ("block1", "block2", "block3", "head")


def to_tensor(X, device: torch.device | str | None = None) -> torch.Tensor:
    """Return images as a float32 tensor in PyTorch's ``(N, C, H, W)`` layout.

    ``(N, H, W)`` input gains a channel axis; 4-D input is taken as ``(N, C, H, W)``.
    The tensor is put on ``device`` (default: the CPU). The Keras twin is
    :func:`tlcourse.keras.to_array`.
    """
    X = torch.as_tensor(X, dtype=torch.float32, device=device)
    return X.unsqueeze(1) if X.ndim == 3 else X


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for an empty model.

    Every function of :mod:`tlcourse.torch` that takes a model runs where this says: move
    the model once (``model.to("cuda")``) and training, prediction and feature extraction
    follow. Random draws (shuffling, latent vectors) are still made on the CPU, so a run
    shuffles the same way on every device.
    """
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def num_outputs(model: nn.Module) -> int | None:
    """Return the width of the model's last ``nn.Linear`` layer (its classes), or None."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


def _conv_block(in_channels: int, out_channels: int, pool: nn.Module) -> nn.Sequential:
    # Layer names match the Keras twin (block1/conv/kernel <-> block1.conv.weight).
    # No conv bias: the BatchNorm shift that follows makes it redundant.
    layers = OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        bn=nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1),
        relu=nn.ReLU(),
        pool=pool,
    )
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        layers["flatten"] = nn.Flatten()
    return nn.Sequential(layers)


def build_digit_net(num_classes: int = 10, width: int = 16, in_channels: int = 1) -> nn.Sequential:
    """Build the course's small CNN for 28x28 digits, with named blocks.

    Taught in :ref:`ch-what-is-transfer-learning`.

    ``block1`` and ``block2`` are conv-BN-ReLU-maxpool (28 -> 14 -> 7 pixels), ``block3`` is
    conv-BN-ReLU followed by global average pooling to a ``4 * width`` feature vector, and
    ``head`` is the linear classifier. The Keras twin has the same layers, names and
    parameter count.

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of the head (logits; no softmax).
    width : int, default 16
        Channels of ``block1``; ``block2`` and ``block3`` have 2x and 4x as many.
    in_channels : int, default 1
        Input channels.

    Returns
    -------
    torch.nn.Sequential
        Children ``block1``, ``block2``, ``block3``, ``head``; input ``(N, C, 28, 28)``.

    Example
    -------
    >>> model = build_digit_net()
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    check_positive_ints(num_classes=num_classes, width=width, in_channels=in_channels)
    w = width
    model = nn.Sequential(
        OrderedDict(
            block1=_conv_block(in_channels, w, nn.MaxPool2d(2)),
            block2=_conv_block(w, 2 * w, nn.MaxPool2d(2)),
            block3=_conv_block(2 * w, 4 * w, nn.AdaptiveAvgPool2d(1)),
            head=nn.Linear(4 * w, num_classes),
        )
    )
    # Channels-last convolution weights make every feature map channels-last (NHWC), which
    # oneDNN's CPU kernels (max-pooling above all) run about 1.3x faster than NCHW here.
    # The layout is invisible to the code: shapes and state dicts are as usual.
    return model.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Count a model's parameters (BatchNorm running statistics are buffers, not counted).

    Taught in :ref:`ch-what-is-transfer-learning`.

    Parameters
    ----------
    model : torch.nn.Module
    trainable_only : bool, default True
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def clone_model(model: nn.Module) -> nn.Module:
    """Return an independent copy of ``model`` with the same weights and buffers.

    Taught in :ref:`ch-pretraining`.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        A deep copy; training it leaves ``model`` untouched.
    """
    return copy.deepcopy(model)
