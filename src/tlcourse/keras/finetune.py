"""Freezing, per-block learning rates and L2-SP in Keras 3 (twin: ``tlcourse.torch.finetune``).

A *block* is a top-level layer of the model (``model.layers`` without the input layer):
``block1`` ... ``head`` for the digit net, ``Conv1`` ... ``out_relu`` for MobileNetV2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import keras
import numpy as np
import pandas as pd

from tlcourse.finetune import blocks_down_to, blocks_until, check_block
from tlcourse.keras.models import block_names, blocks_by_name, sublayers, weights_by_path
from tlcourse.keras.training import fit


def freeze(model: keras.Model, until: str | None = None) -> keras.Model:
    """Freeze the blocks from the first up to and including ``until`` (all for ``None``).

    Taught in :ref:`ch-fine-tuning`.

    Sets ``trainable = False`` on each block. In Keras this also runs the block's
    BatchNorm layers in inference mode (moving statistics used, not updated), which is
    what a frozen block should do. As always in Keras, the change takes effect at the
    next ``compile`` (:func:`tlcourse.keras.fit` compiles for you).

    Returns
    -------
    keras.Model
        ``model`` itself.

    Raises
    ------
    ValueError
        For an unknown block name (the valid names are listed).
    """
    blocks = blocks_by_name(model)
    for name in blocks_until(list(blocks), until):
        _set_trainable(blocks[name], False)
    return model


def _set_trainable(block, value: bool) -> None:
    # Set on every nested layer explicitly: a nested Sequential does not always pass a
    # new value on to layers whose own flag was changed before (e.g. by freeze_batchnorm).
    for layer in sublayers(block):
        layer.trainable = value


def unfreeze(model: keras.Model, down_to: str | None = None) -> keras.Model:
    """Unfreeze the blocks from the last one down to and including ``down_to`` (all for None).

    Taught in :ref:`ch-fine-tuning`.

    Note that an unfrozen BatchNorm layer runs in training mode again (batch statistics,
    moving averages updated) unless its block is called with ``training=False``.

    Returns
    -------
    keras.Model
        ``model`` itself.
    """
    blocks = blocks_by_name(model)
    for name in blocks_down_to(list(blocks), down_to):
        _set_trainable(blocks[name], True)
    return model


def freeze_batchnorm(model: keras.Model) -> keras.Model:
    """Keep every BatchNorm layer exactly as pretrained while the rest trains.

    Taught in :ref:`ch-fine-tuning`.

    Sets ``trainable = False`` on each BatchNormalization layer (nested ones included):
    scale and shift are no longer trained and the layer runs in inference mode, using and
    keeping its moving statistics. Same effect as :func:`tlcourse.torch.freeze_batchnorm`;
    :func:`unfreeze` undoes it.

    Returns
    -------
    keras.Model
        ``model`` itself.
    """
    for block in blocks_by_name(model).values():
        for layer in sublayers(block):
            if _is_bn(layer):
                layer.trainable = False
    return model


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _size(weights, skip: set[int]) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights if id(w) not in skip))


def trainable_summary(model: keras.Model) -> pd.DataFrame:
    """One row per block: trainable and frozen weight counts and what BatchNorm does.

    Taught in :ref:`ch-fine-tuning`.

    Same columns as :func:`tlcourse.torch.trainable_summary`. BatchNorm moving statistics
    are not counted as weights (as in PyTorch, where they are buffers); the ``batchnorm
    statistics`` column says ``"fixed"`` for BatchNorm layers that are not trainable
    (inference mode) and ``"updated"`` otherwise.

    Returns
    -------
    pandas.DataFrame
        Indexed by block name.
    """
    rows = []
    for name, block in blocks_by_name(model).items():
        bns = [layer for layer in sublayers(block) if _is_bn(layer)]
        stats = {id(w) for bn in bns for w in (bn.moving_mean, bn.moving_variance)}
        bn_state = "" if not bns else "updated" if all(b.trainable for b in bns) else "fixed"
        rows.append(
            {
                "block": name,
                "trainable": _size(block.trainable_weights, stats),
                "frozen": _size(block.non_trainable_weights, stats),
                "batchnorm statistics": bn_state,
            }
        )
    return pd.DataFrame(rows).set_index("block")


def l2sp_penalty(
    model: keras.Model,
    reference: keras.Model | Mapping[str, np.ndarray] | None = None,
    *,
    alpha: float = 1e-2,
    beta: float = 1e-2,
    exclude: Iterable[str] = (),
):
    """The L2-SP penalty of Li et al. (2018); same definition as the PyTorch twin.

    Taught in :ref:`ch-fine-tuning`.

    Weights are matched with ``reference`` by path (``block1/conv/kernel``); only trainable
    weights count. ``reference=None`` gives the plain L2 penalty towards zero.

    Returns
    -------
    A scalar tensor to add to the loss.
    """
    blocks = block_names(model)
    excluded = {check_block(name, blocks) for name in exclude}
    if isinstance(reference, keras.Model):
        # The reference model's variables are read where the penalty is computed (also
        # inside a traced training step); no gradient flows into them.
        reference = {p: keras.ops.stop_gradient(w) for p, w in weights_by_path(reference).items()}
    trainable = {id(w) for w in model.trainable_weights}
    total = 0.0
    for path, w in weights_by_path(model).items():
        if id(w) not in trainable:
            continue
        if reference is None:
            total = total + alpha / 2 * keras.ops.sum(keras.ops.square(w))
        elif path.split("/")[0] in excluded:
            total = total + beta / 2 * keras.ops.sum(keras.ops.square(w))
        else:
            ref = reference.get(path)
            if ref is None or tuple(np.shape(ref)) != tuple(w.shape):
                raise ValueError(
                    f"Weight {path!r} has no reference value of shape {tuple(w.shape)}; "
                    "list its block in `exclude` if it is new."
                )
            ref = ref if keras.ops.is_tensor(ref) else np.asarray(ref, np.float32)
            total = total + alpha / 2 * keras.ops.sum(keras.ops.square(w - ref))
    return keras.ops.convert_to_tensor(total, dtype="float32")


def reset_parameters(model: keras.Model, blocks: Iterable[str] = ("head",)) -> keras.Model:
    """Re-initialise the named blocks from their layers' initialisers.

    Taught in :ref:`ch-fine-tuning`.

    A Keras initialiser made without a seed fixes one at construction and returns the same
    values on every call; here each random initialiser gets a new seed drawn from NumPy's
    global generator, which ``set_seed`` seeds, so runs repeat and seeds differ.

    Raises
    ------
    ValueError
        For an unknown block, or a weight whose layer has no ``<name>_initializer``.
    """
    all_blocks = blocks_by_name(model)
    for name in blocks:
        check_block(name, list(all_blocks))
        for layer in sublayers(all_blocks[name]):
            if hasattr(layer, "layers"):
                continue
            for w in layer.weights:
                init = getattr(layer, f"{w.name}_initializer", None)
                if init is None:
                    raise ValueError(f"Cannot re-initialise {layer.name}/{w.name}.")
                config = init.get_config()
                if "seed" in config:
                    seed = int(np.random.randint(2**31 - 1))  # noqa: NPY002 - seeded by set_seed
                    init = type(init).from_config({**config, "seed": seed})
                w.assign(init(w.shape, dtype=w.dtype))
    return model


def _head_dense(model: keras.Model) -> keras.layers.Dense:
    dense = [layer for layer in sublayers(model) if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError("The model has no Dense layer to serve as its head.")
    return dense[-1]


def head_shape(model: keras.Model) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of the model's head, its last ``Dense`` layer.

    Taught in :ref:`ch-fine-tuning`.
    """
    kernel = _head_dense(model).kernel
    return int(kernel.shape[0]), int(kernel.shape[1])


def set_head(model: keras.Model, weights, bias) -> keras.Model:
    """Set the head's kernel ``(fan_in, fan_out)`` and bias (twin of the PyTorch one).

    Taught in :ref:`ch-fine-tuning`.
    """
    dense = _head_dense(model)
    dense.kernel.assign(np.asarray(weights, dtype="float32"))
    dense.bias.assign(np.asarray(bias, dtype="float32"))
    return model


def fit_gradual_unfreezing(
    model: keras.Model,
    X,
    y,
    *,
    stages: Iterable[str] | None = None,
    epochs_per_stage: int = 2,
    **fit_kwargs,
) -> dict[str, list[float]]:
    """Gradual unfreezing, one block per stage from the top down (Howard & Ruder, 2018).

    Taught in :ref:`ch-fine-tuning`.

    Same arguments and result as :func:`tlcourse.torch.fit_gradual_unfreezing`.

    Each stage trains a *view* of ``model`` (``keras.Model(model.inputs, model.outputs)``:
    the same layers and weights) that is kept on the model (untracked: not a layer of it)
    for the next call, so that calling this again on the same model (say, once per seed)
    reuses each stage's compiled training step instead of tracing four new ones.
    """
    stages = list(reversed(block_names(model))) if stages is None else list(stages)
    views = getattr(model, "_tlcourse_stage_views", None)
    if views is None:
        views = {}
        object.__setattr__(model, "_tlcourse_stage_views", views)  # bypasses layer tracking
    history: dict[str, list[float]] = {}
    for stage in stages:
        unfreeze(freeze(model), down_to=stage)
        if stage not in views:
            views[stage] = keras.Model(model.inputs, model.outputs, name=f"{model.name}_{stage}")
        result = fit(views[stage], X, y, num_epochs=epochs_per_stage, **fit_kwargs)
        for key, values in result.items():
            history.setdefault(key, []).extend(values)
    return history
