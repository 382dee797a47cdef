"""Saving, restoring and partially restoring Keras 3 models, the way it is done today.

Whole models go to ``.keras`` files (architecture + weights, loaded with ``safe_mode``
on), checkpoints (weights, optionally optimiser state and metadata) to ``.weights.h5``.
The twin is ``tlcourse.torch.checkpoints``; both halves' functions take the same
arguments and return the same things. Partial restores match weights by their *path*
(``block1/conv/kernel``), the modern form of Caffe's copy-by-layer-name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import keras
import numpy as np

from tlcourse.files import atomic_path
from tlcourse.keras.models import walk_layers, weights_by_path
from tlcourse.restore import CheckpointError, RestoreReport, check_exclusions, match_entries

METADATA_ATTR = "tlcourse_metadata"
OPTIMIZER_GROUP = "tlcourse_optimizer"


def save_checkpoint(
    path: str | os.PathLike,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | None = None,
    scheduler: None = None,
    **metadata: int | float | str | list,
) -> Path:
    """Save ``model``'s weights (and optionally optimiser state) atomically.

    Taught in :ref:`ch-pretraining`.

    The file is Keras' own ``.weights.h5`` (``model.load_weights`` reads it), with the
    optimiser's variables and the metadata (as JSON) added next to the weights. It is
    written under a temporary name and then renamed, so an interruption never leaves a
    half-written checkpoint in place of the previous good one. Same arguments and result
    as :func:`tlcourse.torch.save_checkpoint`.

    Parameters
    ----------
    path : path-like
        Must end in ``.weights.h5`` (Keras' own rule).
    model : keras.Model
    optimizer : keras.optimizers.Optimizer, optional
        Saved too (its variables: step count and moments), so training can resume exactly.
    scheduler : None
        Only for the PyTorch twin's signature: a Keras optimiser carries its learning-rate
        schedule, and its step count is saved with ``optimizer``.
    **metadata
        JSON-serialisable values to store alongside (epoch, history, ...).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        For a path not ending in ``.weights.h5``, or a ``scheduler``.
    """
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Keras weight files must end in '.weights.h5', got {path.name!r}.")
    _check_no_scheduler(scheduler)
    with atomic_path(path) as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs[METADATA_ATTR] = json.dumps(metadata)
            if optimizer is not None:
                group = f.create_group(OPTIMIZER_GROUP)
                for i, variable in enumerate(optimizer.variables):
                    group[str(i)] = keras.ops.convert_to_numpy(variable)
    return path


def _check_no_scheduler(scheduler) -> None:
    if scheduler is not None:
        raise ValueError(
            "A Keras optimizer carries its own learning-rate schedule; pass scheduler=None "
            "(the schedule's position is saved with the optimizer)."
        )


def load_checkpoint(
    path: str | os.PathLike,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | None = None,
    scheduler: None = None,
) -> dict:
    """Restore a full checkpoint into ``model`` (and optimiser); all or nothing.

    Taught in :ref:`ch-pretraining`.

    The file is first loaded into a clone of ``model``; only if that succeeds are the
    weights copied over, so a damaged file or one of another architecture raises
    :class:`~tlcourse.restore.CheckpointError` and leaves ``model`` as it was. Same
    arguments and result as :func:`tlcourse.torch.load_checkpoint`.

    Returns
    -------
    dict
        The metadata stored with :func:`save_checkpoint` (empty for a file written by
        ``model.save_weights``).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    CheckpointError
        If the file cannot be read or does not fit the model, or ``optimizer`` is given
        and the file holds no optimiser state that fits it.
    """
    _check_no_scheduler(scheduler)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    trial = keras.models.clone_model(model)
    try:
        trial.load_weights(path)
        with h5py.File(path, "r") as f:
            metadata = json.loads(f.attrs.get(METADATA_ATTR, "{}"))
            group = f.get(OPTIMIZER_GROUP)
            slots = None if group is None else [group[str(i)][()] for i in range(len(group))]
    except Exception as err:  # h5py and Keras raise several types here
        raise CheckpointError(
            f"{path} could not be loaded into this model ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). The model was left unchanged."
        ) from err
    if optimizer is not None:
        if slots is None:
            raise CheckpointError(f"{path} has no optimizer state to restore.")
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        shapes = [tuple(v.shape) for v in optimizer.variables]
        if shapes != [tuple(np.shape(a)) for a in slots]:
            raise CheckpointError(
                f"{path} holds optimizer state of {len(slots)} variable(s) that does not fit "
                f"this optimizer ({len(shapes)}). Nothing was loaded."
            )
    model.set_weights(trial.get_weights())
    if optimizer is not None:
        for variable, value in zip(optimizer.variables, slots, strict=True):
            variable.assign(value)
    return metadata


def _weights_in_file(path: Path, model: keras.Model) -> dict[str, np.ndarray]:
    """The weights stored in a Keras ``.weights.h5`` file, keyed by weight path.

    Keras stores each layer's variables by position (``layers/<class>/vars/0``), with the
    layer's name as an attribute; the position is turned into a name with the layer of
    ``model`` at the same path (``block1/conv`` + 0 -> ``block1/conv/kernel``). Entries
    with no such layer keep the position (``block9/conv/0``) and are reported as unexpected.
    """
    names = {}
    for layer_path, layer in walk_layers(model):
        if not hasattr(layer, "layers"):
            for i, w in enumerate(layer.weights):
                names[(layer_path, str(i))] = f"{layer_path}/{w.name}"
    arrays: dict[str, np.ndarray] = {}

    def visit(group, prefix: str) -> None:
        for key in group.get("layers", {}):
            sub = group["layers"][key]
            name = sub["vars"].attrs.get("name", key) if "vars" in sub else key
            layer_path = f"{prefix}{name}"
            for i, data in sub.get("vars", {}).items():
                arrays[names.get((layer_path, i), f"{layer_path}/{i}")] = data[()]
            visit(sub, layer_path + "/")

    with h5py.File(path, "r") as f:
        visit(f, "")
    return arrays


def _valid_names(model: keras.Model) -> list[str]:
    return [path for path, layer in walk_layers(model) if layer.weights]


def load_matching(
    model: keras.Model,
    source: keras.Model | Mapping[str, np.ndarray] | str | os.PathLike,
    exclude: Iterable[str] = (),
) -> RestoreReport:
    """Copy the weights of ``source`` whose paths and shapes match ``model``; report the rest.

    Taught in :ref:`ch-pretraining`.

    Parameters
    ----------
    model : keras.Model
    source : keras.Model, mapping, or path-like
        A model, a ``{weight path: array}`` mapping, a ``.weights.h5`` file (written by
        :func:`save_checkpoint` or ``model.save_weights``) or a ``.keras`` file (loaded
        with ``safe_mode=True``).
    exclude : iterable of str
        Layer names not to restore, e.g. ``("head",)``; nested layers are written with
        ``/`` (``"block1/bn"``). A name excludes the layer and everything inside it.

    Returns
    -------
    RestoreReport

    Raises
    ------
    ValueError
        For an excluded name that is not a layer of ``model`` (the valid names are listed).
    CheckpointError
        If nothing matches, or the file cannot be read.

    Example
    -------
    >>> report = load_matching(new_model, source_model, exclude=["head"])
    >>> report.skipped
    ['head/kernel', 'head/bias']
    """
    exclude = check_exclusions(exclude, _valid_names(model))
    arrays = None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"No checkpoint at {path}.")
        try:
            if path.name.endswith(".keras"):
                source = keras.saving.load_model(path, compile=False, safe_mode=True)
            else:
                arrays = _weights_in_file(path, model)
        except Exception as err:
            raise CheckpointError(
                f"{path} is not a readable .keras or .weights.h5 file ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]})."
            ) from err
    if isinstance(source, keras.Model):
        arrays = {
            path: keras.ops.convert_to_numpy(w) for path, w in weights_by_path(source).items()
        }
    elif arrays is None:
        arrays = {k: np.asarray(v) for k, v in source.items()}
    targets = weights_by_path(model)
    report = match_entries(
        {k: tuple(w.shape) for k, w in targets.items()},
        {k: tuple(v.shape) for k, v in arrays.items()},
        exclude,
        sep="/",
    )
    for name in report.loaded:
        targets[name].assign(arrays[name])
    return report
