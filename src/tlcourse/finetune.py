"""Framework-free parts of fine-tuning: which blocks a request names, checked.

A *block* is a top-level child of a model: ``block1`` ... ``head`` for the course's digit
net, ``conv1`` ... ``fc`` for a torchvision ResNet, the top-level layers of a Keras model.
``tlcourse.torch.finetune`` and ``tlcourse.keras.finetune`` use these helpers so that
both frameworks accept and reject exactly the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np


def check_block(name: str, blocks: Sequence[str], what: str = "block") -> str:
    """Return ``name`` if it is one of ``blocks``; otherwise raise a ValueError listing them."""
    if name not in blocks:
        raise ValueError(f"Unknown {what} {name!r}. Valid blocks are: {list(blocks)}.")
    return name


def blocks_until(blocks: Sequence[str], until: str | None) -> list[str]:
    """The blocks from the first up to and including ``until`` (all of them for ``None``)."""
    if until is None:
        return list(blocks)
    return list(blocks[: list(blocks).index(check_block(until, blocks)) + 1])


def blocks_down_to(blocks: Sequence[str], down_to: str | None) -> list[str]:
    """The blocks from ``down_to`` to the last one (all of them for ``None``)."""
    if down_to is None:
        return list(blocks)
    return list(blocks[list(blocks).index(check_block(down_to, blocks)) :])


def check_block_lrs(
    lrs_by_block: Mapping[str, float], blocks: Sequence[str], trainable: Sequence[str]
) -> dict[str, float]:
    """Validate per-block learning rates: known names, positive values, none missing.

    Parameters
    ----------
    lrs_by_block : mapping of str to float
        Learning rate per block name.
    blocks : sequence of str
        Every block of the model, in order.
    trainable : sequence of str
        The blocks that have trainable parameters; each needs a learning rate (frozen
        blocks may be left out).

    Returns
    -------
    dict
        The learning rates, as floats.
    """
    if not isinstance(lrs_by_block, Mapping) or not lrs_by_block:
        raise ValueError("lrs_by_block must be a non-empty mapping of block name to rate.")
    lrs = {}
    for name, lr in lrs_by_block.items():
        check_block(name, blocks)
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise ValueError(f"Learning rate of {name!r} must be a positive number, got {lr!r}.")
        lrs[name] = float(lr)
    missing = [name for name in trainable if name not in lrs]
    if missing:
        raise ValueError(
            f"Blocks {missing} have trainable parameters but no learning rate; give them one "
            "or freeze them."
        )
    return lrs


def discriminative_lrs(blocks: Sequence[str], top_lr: float, factor: float) -> dict[str, float]:
    """Learning rates that shrink by ``factor`` per block from the last block down.

    ``discriminative_lrs(["block1", "block2", "block3", "head"], 1e-2, 3)`` gives the head
    ``1e-2``, ``block3`` ``1e-2 / 3``, ``block2`` ``1e-2 / 9`` and ``block1`` ``1e-2 / 27``:
    layers near the input, whose features are the most general, move the least.
    """
    if not top_lr > 0 or not factor >= 1:
        raise ValueError(f"Need top_lr > 0 and factor >= 1, got {top_lr!r} and {factor!r}.")
    n = len(blocks)
    return {name: top_lr / factor ** (n - 1 - i) for i, name in enumerate(blocks)}


HEAD_INITS = ("pytorch", "keras")


def head_init_values(kind: str, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(fan_in, fan_out)`` and biases of a new linear head, as a framework draws them.

    Taught in :ref:`ch-fine-tuning`.

    - ``"pytorch"``: ``nn.Linear``'s default, weights and biases uniform in
      ``+-1 / sqrt(fan_in)``;
    - ``"keras"``: ``keras.layers.Dense``'s default, Glorot-uniform weights (uniform in
      ``+-sqrt(6 / (fan_in + fan_out))``) and zero biases.

    Drawn from NumPy's global generator, which both frameworks' ``set_seed`` seed.
    """
    if kind not in HEAD_INITS:
        raise ValueError(f"Unknown head_init {kind!r}; valid: {HEAD_INITS}.")
    torch_style = kind == "pytorch"
    bound = 1.0 / np.sqrt(fan_in) if torch_style else np.sqrt(6.0 / (fan_in + fan_out))
    weights = np.random.uniform(-bound, bound, (fan_in, fan_out))  # noqa: NPY002
    bias = np.random.uniform(-bound, bound, fan_out) if torch_style else np.zeros(fan_out)  # noqa: NPY002
    return weights.astype(np.float32), bias.astype(np.float32)


@dataclass(frozen=True)
class Strategy:
    """A fine-tuning recipe: what to reset, what to freeze, how to train.

    Attributes
    ----------
    freeze_until : str, optional
        Freeze the blocks up to and including this one (``"block3"``: head only).
    from_scratch : bool
        Re-initialise every block instead of starting from the pretrained weights.
    lr_factor : float, optional
        Discriminative learning rates: each block's rate is the next block's divided by
        this factor (see :func:`discriminative_lrs`).
    gradual : bool
        Gradual unfreezing, one block per stage from the head down, the epochs split evenly
        between the stages.
    penalty : {"l2", "l2sp"}, optional
        Add the L2 penalty (towards zero) or the L2-SP penalty (towards the pretrained
        weights) with strength ``alpha`` (``beta = alpha`` for the new head).
    alpha : float
    fixed_batchnorm : bool
        Keep every BatchNorm layer as pretrained (``freeze_batchnorm``).
    num_epochs, batch_size, lr : optional
        This strategy's own training recipe, overriding the one passed to
        :func:`fine_tune` (training from scratch needs more steps than fine-tuning).
    head_init : {"pytorch", "keras"}, optional
        Draw the new head as the other framework's default would (see
        :func:`head_init_values`); by default each framework uses its own.
    keep_head : bool
        Keep the source model's head instead of drawing a new one: possible when the
        target task has the source's classes (the ten digits here).
    """

    freeze_until: str | None = None
    from_scratch: bool = False
    lr_factor: float | None = None
    gradual: bool = False
    penalty: str | None = None
    alpha: float = 0.1
    fixed_batchnorm: bool = False
    num_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    head_init: str | None = None
    keep_head: bool = False

    def __post_init__(self):
        if self.head_init not in (None, *HEAD_INITS):
            raise ValueError(f"Unknown head_init {self.head_init!r}; valid: None, {HEAD_INITS}.")
        if self.penalty not in (None, "l2", "l2sp"):
            raise ValueError(f"Unknown penalty {self.penalty!r}; valid: None, 'l2', 'l2sp'.")
        if self.from_scratch and self.penalty == "l2sp":
            raise ValueError("L2-SP pulls towards pretrained weights; from_scratch has none.")
        if self.keep_head and (self.from_scratch or self.head_init is not None):
            raise ValueError("keep_head keeps the source head; it cannot also draw a new one.")
        if self.gradual and (self.freeze_until or self.lr_factor):
            raise ValueError("gradual unfreezing decides what is frozen; combine it with neither.")


@dataclass(frozen=True)
class Penalty:
    """``penalty(model)``: L2 (towards zero) or L2-SP (towards ``reference``) on every block
    but ``exclude``, as :func:`tlcourse.torch.l2sp_penalty` computes it.

    A value, not a closure: two equal penalties (same backend, reference model, strength
    and exclusions) compare equal, so a Keras model trained again with an equal penalty
    keeps its compiled training step (:func:`tlcourse.keras.fit` compares them).
    """

    backend: ModuleType
    reference: object  # None for plain L2; compared by identity (a model has no ``==``)
    alpha: float
    exclude: tuple[str, ...]

    def __call__(self, model):
        return self.backend.l2sp_penalty(
            model, self.reference, alpha=self.alpha, beta=self.alpha, exclude=list(self.exclude)
        )


def _penalty(backend: ModuleType, model, source, strategy: Strategy) -> Penalty | None:
    if strategy.penalty is None:
        return None
    # Both halves' l2sp_penalty read the source model's current weights (without
    # gradients), so the source itself is the reference.
    reference = None if strategy.penalty == "l2" else source
    head = backend.block_names(model)[-1]
    return Penalty(backend, reference, float(strategy.alpha), (head,))


def fine_tune(
    backend: ModuleType,
    model,
    source,
    X,
    y,
    strategy: Strategy,
    *,
    seed: int,
    num_epochs: int,
    batch_size: int,
    lr: float,
    quiet: bool = True,
):
    """Reset ``model`` to ``source``, apply ``strategy``, train on (X, y).

    The head is drawn anew unless the strategy keeps the source's (``keep_head``).

    ``num_epochs``, ``batch_size`` and ``lr`` are the recipe, unless the strategy has its
    own.

    The same code runs on both frameworks (``backend`` is :mod:`tlcourse.torch` or
    :mod:`tlcourse.keras`). ``model`` must have the architecture of ``source``; reusing one
    model object across seeds lets Keras keep its compiled training step.

    Returns
    -------
    The trained ``model``.
    """
    num_epochs = strategy.num_epochs or num_epochs
    batch_size = strategy.batch_size or batch_size
    lr = strategy.lr or lr
    blocks = backend.block_names(model)
    backend.set_seed(seed)
    backend.unfreeze(model)
    backend.load_matching(model, source)  # every weight and statistic, as pretrained
    new = blocks if strategy.from_scratch else [] if strategy.keep_head else blocks[-1:]
    backend.reset_parameters(model, new)
    if strategy.head_init is not None:
        backend.set_head(model, *head_init_values(strategy.head_init, *backend.head_shape(model)))
    if strategy.freeze_until is not None:
        backend.freeze(model, until=strategy.freeze_until)
    if strategy.fixed_batchnorm:
        backend.freeze_batchnorm(model)
    common = {"batch_size": batch_size, "seed": seed, "quiet": quiet}
    if strategy.gradual:
        backend.fit_gradual_unfreezing(
            model, X, y, epochs_per_stage=max(1, num_epochs // len(blocks)), lr=lr, **common
        )
    else:
        rate = discriminative_lrs(blocks, lr, strategy.lr_factor) if strategy.lr_factor else lr
        penalty = _penalty(backend, model, source, strategy)
        backend.fit(model, X, y, num_epochs=num_epochs, lr=rate, penalty=penalty, **common)
    return model
