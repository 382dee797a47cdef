"""Framework-free parts of fine-tuning: which blocks a request names, checked.

A *block* is a top-level child of a model: ``block1`` ... ``head`` for the course's digit
net, ``conv1`` ... ``fc`` for a torchvision ResNet, the top-level layers of a Keras model.
:mod:`tlcourse.torch.finetune` and :mod:`tlcourse.keras.finetune` use these helpers so that
both frameworks accept and reject exactly the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


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
