"""Saving, restoring and partially restoring Keras 3 models, the way it is done today.

Whole models go to ``.keras`` files (architecture + weights, loaded with ``safe_mode``
on), weights alone to ``.weights.h5``. Partial restores match weights by their *path*
(``block1/conv/kernel``), the modern form of Caffe's copy-by-layer-name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import keras
import numpy as np

from tlcourse.restore import CheckpointError, RestoreReport, check_exclusions, match_entries


def save_checkpoint(path: str | os.PathLike, model: keras.Model) -> Path:
    """Save ``model``'s weights to a ``.weights.h5`` file atomically.

    Parameters
    ----------
    path : path-like
        Must end in ``.weights.h5`` (Keras' own rule).
    model : keras.Model

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Keras weight files must end in '.weights.h5', got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}.tmp.{path.name}")
    model.save_weights(tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, model: keras.Model) -> None:
    """Restore all weights from a ``.weights.h5`` file; all or nothing.

    The file is first loaded into a clone of ``model``; only if that succeeds are the
    weights copied over, so a damaged file or one of another architecture raises
    :class:`~tlcourse.restore.CheckpointError` and leaves ``model`` as it was.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    CheckpointError
        If the file cannot be read or does not fit the model.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    trial = keras.models.clone_model(model)
    try:
        trial.load_weights(path)
    except Exception as err:  # h5py and Keras raise several types here
        raise CheckpointError(
            f"{path} could not be loaded into this model ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). The model was left unchanged."
        ) from err
    model.set_weights(trial.get_weights())


def _walk(model: keras.Model):
    """Yield (layer path, layer) for every layer, nested models included, in order.

    Paths are built from layer names (``block1/conv``) rather than taken from
    ``variable.path``, which depends on how the model was built or loaded.
    """

    def walk(layer, prefix):
        for sub in getattr(layer, "layers", []):
            path = f"{prefix}{sub.name}"
            yield path, sub
            yield from walk(sub, path + "/")

    yield from walk(model, "")


def _weights_by_path(model: keras.Model) -> dict[str, keras.Variable]:
    weights = {}
    for path, layer in _walk(model):
        if not hasattr(layer, "layers"):
            for w in layer.weights:
                weights[f"{path}/{w.name}"] = w
    return weights


def _valid_names(model: keras.Model) -> list[str]:
    return [path for path, layer in _walk(model) if layer.weights]


def load_matching(
    model: keras.Model,
    source: keras.Model | Mapping[str, np.ndarray] | str | os.PathLike,
    exclude: Iterable[str] = (),
) -> RestoreReport:
    """Copy the weights of ``source`` whose paths and shapes match ``model``; report the rest.

    Parameters
    ----------
    model : keras.Model
    source : keras.Model, mapping, or path-like
        A model, a ``{weight path: array}`` mapping, or a ``.keras`` file (loaded with
        ``safe_mode=True``).
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
    if isinstance(source, str | os.PathLike):
        try:
            source = keras.saving.load_model(source, compile=False, safe_mode=True)
        except Exception as err:
            raise CheckpointError(
                f"{source} is not a readable .keras file ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]})."
            ) from err
    if isinstance(source, keras.Model):
        arrays = {
            path: keras.ops.convert_to_numpy(w) for path, w in _weights_by_path(source).items()
        }
    else:
        arrays = {k: np.asarray(v) for k, v in source.items()}
    targets = _weights_by_path(model)
    report = match_entries(
        {k: tuple(w.shape) for k, w in targets.items()},
        {k: tuple(v.shape) for k, v in arrays.items()},
        exclude,
        sep="/",
    )
    for name in report.loaded:
        targets[name].assign(arrays[name])
    return report
