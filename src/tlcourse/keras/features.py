"""Frozen networks as feature extractors, in Keras (twin: ``tlcourse.torch.features``)."""

from __future__ import annotations

import keras
import numpy as np

from tlcourse.batching import INFERENCE_BATCH_SIZE
from tlcourse.checks import check_images_and_labels
from tlcourse.keras.models import to_array, torch_like_dense
from tlcourse.keras.training import fit, run_in_batches


def feature_layers(model: keras.Model) -> list[str]:
    """Names that :func:`extract_features` accepts: the model's top-level layers.

    Taught in :ref:`ch-feature-extraction`.
    """
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def extract_features(
    model: keras.Model, X, *, layer: str | None = None, batch_size: int = INFERENCE_BATCH_SIZE
) -> np.ndarray:
    """Run ``model`` in inference mode and return the output of ``layer``, flattened.

    Taught in :ref:`ch-feature-extraction`.

    Builds ``keras.Model(model.inputs, model.get_layer(layer).output)`` and runs it in
    inference mode (BatchNorm uses its moving statistics), one batch at a time.

    Parameters
    ----------
    model : keras.Model
        A functional or sequential model (``keras.applications`` models included).
    X : array-like
        Images ``(N, H, W)`` or ``(N, H, W, C)``.
    layer : str, optional
        A top-level layer name (``"block2"``, ``"out_relu"``); ``None`` means the layer
        before the last one (the input of the classifier head).
    batch_size : int, default INFERENCE_BATCH_SIZE (256)

    Returns
    -------
    np.ndarray
        float32 features of shape ``(N, D)``.

    Raises
    ------
    ValueError
        For an unknown layer (the valid names are listed).
    """
    names = feature_layers(model)
    if layer is None:
        if len(names) < 2:
            raise ValueError("layer=None needs a model with at least two layers.")
        layer = names[-2]
    if layer not in names:
        raise ValueError(f"Unknown layer {layer!r}. Valid layers are: {names}.")
    X, _ = check_images_and_labels(X)
    X = to_array(X)
    if isinstance(model, keras.Sequential):
        # A Sequential never called has no symbolic input (Keras raises "has never been
        # called"); the layers up to ``layer`` are the extractor.
        extractor = keras.Sequential(model.layers[: names.index(layer) + 1])
    else:
        extractor = keras.Model(model.inputs, model.get_layer(layer).output)
    features = run_in_batches(extractor, X, batch_size)
    return features.reshape(len(features), -1).astype(np.float32, copy=False)


def build_linear_head(in_features: int, num_classes: int = 10) -> keras.Model:
    """A linear classifier on ``in_features``-dimensional features (logits out).

    Taught in :ref:`ch-feature-extraction`.

    Initialised as PyTorch's ``nn.Linear`` is (``tlcourse.keras.models.torch_like_dense``),
    so the two frameworks' probes start from the same distribution.
    """
    return keras.Sequential(
        [keras.Input((in_features,)), torch_like_dense(num_classes, in_features, name="head")]
    )


def fit_linear_probe(features, y, *, num_classes: int = 10, **fit_kwargs):
    """Train a linear classifier (one ``Dense`` layer) on fixed features; return (head, history).

    Taught in :ref:`ch-feature-extraction`.

    Same arguments as :func:`tlcourse.torch.fit_linear_probe`.
    """
    features = np.asarray(features, np.float32)
    if features.ndim != 2:
        raise ValueError(f"Expected features of shape (N, D), got {features.shape}.")
    head = build_linear_head(features.shape[1], num_classes)
    history = fit(head, features, y, **{"quiet": True, **fit_kwargs})
    return head, history
