"""Fine-tuning on a folder of images, written as plain Keras (twin: ``tlcourse.torch.folder``).

``image_dataset_from_directory``, a pretrained base called with ``training=False`` inside a
functional model, then ``compile`` and ``fit`` with ``ModelCheckpoint(save_best_only=True)``:
the pattern of the Keras transfer-learning guide, which the chapter on your own images
shows in full and the ``tlcourse-finetune`` command runs.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlcourse.image_folder import SPLITS


def make_datasets(
    folder: str | Path, backbone: str, image_size: int, *, batch_size: int = 32, seed: int = 0
) -> dict[str, tf.data.Dataset]:
    """One dataset per split folder, preprocessed the way the backbone expects.

    Taught in :ref:`ch-your-own-images`.

    The digit net reads 28x28 grey images in [0, 1]; MobileNetV2 reads RGB scaled to
    [-1, 1] by ``keras.applications.mobilenet_v2.preprocess_input``. Only the training
    split is shuffled. ``tf.data`` derives a shuffle order from the op seed *and*
    TensorFlow's global seed, so this sets the global seed to ``seed`` first: the order
    then depends on ``seed`` alone, not on what ran before in the process.
    """
    tf.random.set_seed(seed)
    grey = backbone == "digit-net"
    if grey:

        def scale(x):
            return x / 255.0
    else:
        scale = keras.applications.mobilenet_v2.preprocess_input
    out = {}
    for split in SPLITS:
        data = keras.utils.image_dataset_from_directory(
            Path(folder) / split, labels="inferred", label_mode="int",
            color_mode="grayscale" if grey else "rgb", image_size=(image_size, image_size),
            batch_size=batch_size, shuffle=split == "train", seed=seed, verbose=False,
        )  # fmt: skip
        out[split] = data.map(lambda x, y: (scale(x), y)).prefetch(tf.data.AUTOTUNE)
    return out


def build_backbone_model(
    backbone: str,
    num_classes: int,
    *,
    weights: str = "course",
    image_size: int = 224,
    seed: int = 0,
) -> tuple[keras.Model, list]:
    """A pretrained base and a new head; returns ``(model, top_layers_of_base)``.

    Taught in :ref:`ch-your-own-images`.

    The base is nested in a functional model and called with ``training=False``, so its
    BatchNorm layers stay in inference mode even when unfrozen (the Keras guide's rule).

    Parameters
    ----------
    backbone : {"digit-net", "mobilenet_v2"}
        ResNet-18 is not in ``keras.applications``.
    num_classes : int
    weights : {"course", "imagenet", "none"}
    image_size : int, default 224
        Input side for MobileNetV2 (the digit net reads 28).
    seed : int, default 0
        Seeds the new head's (and a random base's) initial weights.
    """
    keras.utils.set_random_seed(seed)
    if backbone == "digit-net":
        from tlcourse.keras.models import build_digit_net
        from tlcourse.keras.source import get_source_model

        source = get_source_model(quiet=True) if weights == "course" else build_digit_net()
        base = keras.Model(source.input, source.get_layer("block3").output, name="backbone")
        top, shape = [base.get_layer("block3")], (28, 28, 1)
    elif backbone == "mobilenet_v2":
        shape = (image_size, image_size, 3)
        base = keras.applications.MobileNetV2(
            input_shape=shape, include_top=False, pooling="avg",
            weights="imagenet" if weights == "imagenet" else None,
        )  # fmt: skip
        top = base.layers[-20:]  # the last three inverted-residual blocks and the last conv
    else:
        raise ValueError(f"unknown Keras backbone {backbone!r}; use digit-net or mobilenet_v2.")
    keras.utils.set_random_seed(seed)  # the head starts the same whatever the base drew
    inputs = keras.Input(shape)
    outputs = keras.layers.Dense(num_classes, name="head")(base(inputs, training=False))
    return keras.Model(inputs, outputs), top


def fit_two_phase(
    model, top, datasets, *, epochs: int, lr: float, class_weights, checkpoint: str | Path,
    seed: int = 0, quiet: bool = False,
) -> list[dict]:  # fmt: skip
    """Train the head, then the head and the top of the base; keep the best epoch.

    Taught in :ref:`ch-your-own-images`.

    Phase 1: the base frozen, Adam at ``lr``, ``epochs`` epochs; phase 2: ``top`` unfrozen
    at ``lr / 10`` for ``epochs`` more (recompiled: a change of ``trainable`` takes effect
    at ``compile``). ``ModelCheckpoint(save_best_only=True)`` keeps the epoch with the
    highest validation accuracy across both phases (the earliest on a tie), and its
    weights are loaded back at the end.

    Returns
    -------
    list of dict
        One ``{"epoch", "phase", "loss", "val_accuracy"}`` per epoch.
    """
    keras.utils.set_random_seed(seed)
    base = model.layers[1]
    best = keras.callbacks.ModelCheckpoint(
        str(checkpoint), monitor="val_accuracy", mode="max", save_best_only=True,
        save_weights_only=True,
    )  # fmt: skip
    weights = dict(enumerate(np.asarray(class_weights, float).tolist()))
    callbacks = [best] if quiet else [best, epoch_bar()]
    history = []
    for phase, rate in ((1, lr), (2, lr / 10)):
        base.trainable = False
        for layer in top:
            layer.trainable = phase == 2
        if phase == 2:
            base.trainable = True  # a frozen parent freezes its children: open it, then
            for layer in base.layers:  # close every layer that is not in the top
                layer.trainable = any(layer is t for t in top)
        model.compile(
            optimizer=keras.optimizers.Adam(rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        logs = model.fit(
            datasets["train"], validation_data=datasets["val"], epochs=phase * epochs,
            initial_epoch=(phase - 1) * epochs, class_weight=weights, verbose=0,
            callbacks=callbacks, shuffle=False,  # the training dataset shuffles itself
        ).history  # fmt: skip
        for loss, acc in zip(logs["loss"], logs["val_accuracy"], strict=True):
            history.append(
                dict(epoch=len(history) + 1, phase=phase, loss=float(loss), val_accuracy=float(acc))
            )
    model.load_weights(str(checkpoint))
    return history


def epoch_bar():
    """``tqdm.keras.TqdmCallback``: one progress bar over the epochs of ``fit``.

    Taught in :ref:`ch-your-own-images`.

    Its plain-text bar, also in a notebook (the notebook bar needs ipywidgets, which the
    course does not install; ``tqdm.auto`` warns at import when they are missing).
    """
    import warnings

    from tqdm import TqdmWarning
    from tqdm.std import tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.keras import TqdmCallback
    return TqdmCallback(verbose=0, tqdm_class=tqdm)


def predict_dataset(model, data) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted probabilities for every image of ``data``, in its order.

    Taught in :ref:`ch-your-own-images`.
    """
    ys, probs = [], []
    for X, y in data:
        probs.append(keras.ops.convert_to_numpy(keras.ops.softmax(model(X, training=False))))
        ys.append(np.asarray(y))
    return np.concatenate(ys), np.concatenate(probs)
