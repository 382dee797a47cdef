"""Keras 3 / TensorFlow half of the course package; mirrors :mod:`tlcourse.torch`."""

import os

# Must be set before TensorFlow is first imported: the course runs Keras 3 on TensorFlow,
# and TensorFlow's C++ start-up chatter is noise to a reader.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tlcourse.frameworks import load_triton_before_tensorflow  # noqa: E402

load_triton_before_tensorflow()

from tlcourse.keras.adaptation import (  # noqa: E402
    DomainAdapter,
    adapt,
    adapt_batchnorm,
    build_domain_head,
    coral_loss,
    mmd_loss,
)
from tlcourse.keras.adversarial import GradientReversal, reverse_gradient  # noqa: E402
from tlcourse.keras.checkpoints import load_checkpoint, load_matching, save_checkpoint  # noqa: E402
from tlcourse.keras.features import (  # noqa: E402
    build_linear_head,
    extract_features,
    feature_layers,
    fit_linear_probe,
)
from tlcourse.keras.finetune import (  # noqa: E402
    fit_gradual_unfreezing,
    freeze,
    freeze_batchnorm,
    head_shape,
    l2sp_penalty,
    reset_parameters,
    set_head,
    trainable_summary,
    unfreeze,
)
from tlcourse.keras.gan import (  # noqa: E402
    ConditionalGAN,
    build_discriminator,
    build_generator,
    generate,
    generate_labelled,
    train_gan,
)
from tlcourse.keras.models import (  # noqa: E402
    block_names,
    build_digit_net,
    clone_model,
    count_parameters,
)
from tlcourse.keras.optim import BlockwiseAdamW, param_groups  # noqa: E402
from tlcourse.keras.source import get_source_model  # noqa: E402
from tlcourse.keras.training import evaluate, fit, predict, set_seed  # noqa: E402
from tlcourse.port import port_to_torch  # noqa: E402

__all__ = [
    "adapt",
    "adapt_batchnorm",
    "build_domain_head",
    "coral_loss",
    "mmd_loss",
    "GradientReversal",
    "reverse_gradient",
    "build_discriminator",
    "build_generator",
    "ConditionalGAN",
    "DomainAdapter",
    "generate",
    "generate_labelled",
    "train_gan",
    "block_names",
    "fit_gradual_unfreezing",
    "freeze",
    "freeze_batchnorm",
    "l2sp_penalty",
    "param_groups",
    "head_shape",
    "reset_parameters",
    "set_head",
    "trainable_summary",
    "unfreeze",
    "BlockwiseAdamW",
    "build_linear_head",
    "extract_features",
    "feature_layers",
    "fit_linear_probe",
    "build_digit_net",
    "clone_model",
    "count_parameters",
    "evaluate",
    "fit",
    "get_source_model",
    "load_checkpoint",
    "load_matching",
    "port_to_torch",
    "predict",
    "save_checkpoint",
    "set_seed",
]
