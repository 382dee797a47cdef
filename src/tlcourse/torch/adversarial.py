"""The gradient-reversal layer of domain-adversarial training, in PyTorch.

Twin: ``tlcourse.keras.adversarial``. Ganin & Lempitsky (2015) add a *domain
classifier* as an extra head on a network's features and put this layer between the two:
on the way forward it changes nothing, on the way back it multiplies the gradient by
``-lambda``. One backward pass then trains the domain head to tell source from target and,
at the same time, pushes the feature extractor to make the two indistinguishable.
"""

from __future__ import annotations

import torch
from torch import nn

from tlcourse.checks import check_non_negative


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.lambda_ * grad_output, None


def reverse_gradient(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    """Identity on the way forward; multiplies the gradient by ``-lambda_`` on the way back.

    Taught in :ref:`ch-gan-augmentation`.

    Parameters
    ----------
    x : torch.Tensor
    lambda_ : float, default 1.0
        Non-negative strength of the reversal (0 blocks the gradient).

    Returns
    -------
    torch.Tensor
        A tensor equal to ``x``.
    """
    return _ReverseGradient.apply(x, check_non_negative("lambda_", lambda_))


class GradientReversal(nn.Module):
    """Layer form of :func:`reverse_gradient`; ``lambda_`` may be changed during training.

    Taught in :ref:`ch-gan-augmentation`.

    Example
    -------
    >>> domain_head = nn.Sequential(GradientReversal(1.0), nn.Linear(64, 1))
    >>> domain_logit = domain_head(features)   # features: (N, 64)
    """

    def __init__(self, lambda_: float = 1.0):
        super().__init__()
        self.lambda_ = check_non_negative("lambda_", lambda_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}"
