"""The course's digit network in Keras 3 (its twin is ``tlcourse.torch.models``)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from tlcourse.checks import check_positive_ints

BLOCK_NAMES = ("block1", "block2", "block3", "head")


def to_array(X) -> np.ndarray:
    """Return images as a float32 array in Keras' ``(N, H, W, C)`` layout.

    ``(N, H, W)`` input gains a channel axis; 4-D input is taken as ``(N, H, W, C)``.
    The PyTorch twin is :func:`tlcourse.torch.to_tensor`.
    """
    X = np.asarray(X, np.float32)
    return X[..., None] if X.ndim == 3 else X


def num_outputs(model: keras.Model) -> int | None:
    """Return the width of the model's output (its classes), or None if it has no one shape."""
    shape = model.output_shape
    return shape[-1] if isinstance(shape, tuple) else None


def blocks_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Return the model's blocks (top-level layers without the input layer) by name, in order.

    Raises
    ------
    ValueError
        If the model has no such layer.
    """
    blocks = {
        layer.name: layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    }
    if not blocks:
        raise ValueError(f"Model {model.name!r} has no layers to freeze or unfreeze.")
    return blocks


def block_names(model: keras.Model) -> list[str]:
    """The model's blocks (top-level layers without the input layer), in order.

    Taught in :ref:`ch-fine-tuning`.
    """
    return list(blocks_by_name(model))


def sublayers(layer) -> list:
    """Return ``layer`` and every layer nested in it, depth first."""
    out = [layer]
    for sub in getattr(layer, "layers", []):
        out.extend(sublayers(sub))
    return out


def walk_layers(model: keras.Model):
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


def weights_by_path(model: keras.Model) -> dict[str, keras.Variable]:
    """Return every weight of ``model`` keyed by its path (``block1/conv/kernel``), in order.

    These are the names :func:`tlcourse.keras.load_matching` matches and reports.
    """
    weights = {}
    for path, layer in walk_layers(model):
        if not hasattr(layer, "layers"):
            for w in layer.weights:
                weights[f"{path}/{w.name}"] = w
    return weights


def torch_like_dense(units: int, fan_in: int, name: str, **kwargs) -> keras.layers.Dense:
    """A ``Dense`` layer initialised as PyTorch initialises ``nn.Linear(fan_in, units)``.

    PyTorch draws weights and biases uniformly from +-1/sqrt(fan_in); Keras' defaults
    (Glorot-uniform weights, zero biases) start about twice as large for a 10-class head.
    With the same starting distribution, a side-by-side table of the two frameworks
    compares their training, not their defaults.
    """
    bound = 1.0 / float(np.sqrt(fan_in))
    return layers.Dense(
        units,
        kernel_initializer=torch_kernel_init(),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        name=name,
        **kwargs,
    )


def torch_kernel_init() -> keras.initializers.Initializer:
    """PyTorch's default for conv and linear weights, ``kaiming_uniform_(a=sqrt(5))``.

    That is uniform on +-1/sqrt(fan_in): Keras' ``VarianceScaling`` with scale 1/3 (its
    limit is sqrt(3 * scale / fan_in)). A new instance per layer: an unseeded Keras
    initializer draws its seed when it is made, so one instance shared by two layers would
    give them the same values.
    """
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


def _conv_block(name: str, filters: int, pool: keras.layers.Layer) -> keras.Sequential:
    # Layer names match the PyTorch twin (block1/conv/kernel <-> block1.conv.weight), and
    # explicit names keep weight paths identical between two instances of the model.
    # BatchNorm as in PyTorch's defaults: Keras' momentum 0.9 is PyTorch's 0.1.
    return keras.Sequential(
        [
            layers.Conv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer=torch_kernel_init(),
                name="conv",
            ),
            layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn"),
            layers.ReLU(name="relu"),
            pool,
        ],
        name=name,
    )


def build_digit_net(num_classes: int = 10, width: int = 16, in_channels: int = 1) -> keras.Model:
    """Build the course's small CNN for 28x28 digits, with named blocks.

    Taught in :ref:`ch-what-is-transfer-learning`.

    The same network as :func:`tlcourse.torch.build_digit_net`: ``block1`` and ``block2``
    are conv-BN-ReLU-maxpool, ``block3`` is conv-BN-ReLU plus global average pooling to a
    ``4 * width`` feature vector, ``head`` the linear classifier (logits, no softmax).
    Each block is a nested model, so ``model.get_layer("block2").output`` is a feature map.
    Weights start from PyTorch's default distributions (see
    ``tlcourse.keras.models.torch_like_dense``), so a fresh network in either framework is
    a draw from the same distribution.

    Parameters
    ----------
    num_classes : int, default 10
    width : int, default 16
        Channels of ``block1``; ``block2`` and ``block3`` have 2x and 4x as many.
    in_channels : int, default 1

    Returns
    -------
    keras.Model
        Functional model, input ``(N, 28, 28, C)`` (channels last).

    Example
    -------
    >>> model = build_digit_net()
    >>> model(np.zeros((2, 28, 28, 1))).shape
    TensorShape([2, 10])
    """
    check_positive_ints(num_classes=num_classes, width=width, in_channels=in_channels)
    w = width
    inputs = keras.Input((28, 28, in_channels), name="image")
    block1 = _conv_block("block1", w, layers.MaxPooling2D(2, name="pool"))
    block2 = _conv_block("block2", 2 * w, layers.MaxPooling2D(2, name="pool"))
    block3 = _conv_block("block3", 4 * w, layers.GlobalAveragePooling2D(name="pool"))
    head = torch_like_dense(num_classes, 4 * w, name="head")
    outputs = head(block3(block2(block1(inputs))))
    return keras.Model(inputs, outputs, name="digit_net")


def count_parameters(model: keras.Model, trainable_only: bool = True) -> int:
    """Count a model's weights; BatchNorm moving statistics count only if not trainable_only.

    Taught in :ref:`ch-what-is-transfer-learning`.

    Parameters
    ----------
    model : keras.Model
    trainable_only : bool, default True
        Count only trainable weights (what PyTorch calls parameters with ``requires_grad``).

    Returns
    -------
    int
    """
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(int(keras.ops.size(w)) for w in weights))


def clone_model(model: keras.Model) -> keras.Model:
    """Return an independent copy of ``model`` with the same weights.

    Taught in :ref:`ch-pretraining`.

    ``keras.models.clone_model`` copies the architecture with fresh weights; this also
    copies the weights (BatchNorm statistics included) and the attributes that the
    course's builders set (``latent_dim``, ``num_classes``, ``width``). The clone is not
    compiled, whatever the model was compiled with.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    keras.Model
    """
    # keras.models.clone_model also re-compiles the clone from the model's compile config,
    # which fails for an optimiser that cannot be serialised (BlockwiseAdamW holds its
    # variable groups). The copy needs only architecture and weights (fit compiles anyway),
    # so the model is cloned as if it were not compiled.
    compiled = getattr(model, "compiled", False)
    model.compiled = False
    try:
        clone = keras.models.clone_model(model)
    finally:
        model.compiled = compiled
    clone.set_weights(model.get_weights())
    # Plain attributes that the course's builders attach (a generator's ``latent_dim``, ...)
    # are not part of a Keras config; carry them over so the clone works where the model did.
    for name in _BUILDER_ATTRIBUTES:
        if hasattr(model, name):
            setattr(clone, name, getattr(model, name))
    return clone


_BUILDER_ATTRIBUTES = ("latent_dim", "num_classes", "width")
