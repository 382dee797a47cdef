"""PyTorch half of the course package; mirrors :mod:`tlcourse.keras` name for name."""

from tlcourse.frameworks import block_triton_after_tensorflow

block_triton_after_tensorflow()

from tlcourse.port import port_to_keras  # noqa: E402
from tlcourse.torch.adaptation import (  # noqa: E402
    adapt,
    adapt_batchnorm,
    build_domain_head,
    coral_loss,
    mmd_loss,
)
from tlcourse.torch.adversarial import GradientReversal, reverse_gradient  # noqa: E402
from tlcourse.torch.checkpoints import (  # noqa: E402
    load_checkpoint,
    load_matching,
    read_checkpoint,
    save_checkpoint,
)
from tlcourse.torch.features import (  # noqa: E402
    Frozen,
    build_linear_head,
    extract_features,
    feature_layers,
    fit_linear_probe,
)
from tlcourse.torch.finetune import (  # noqa: E402
    block_names,
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
from tlcourse.torch.gan import (  # noqa: E402
    build_discriminator,
    build_generator,
    generate,
    generate_labelled,
    train_gan,
)
from tlcourse.torch.models import build_digit_net, clone_model, count_parameters  # noqa: E402
from tlcourse.torch.optim import param_groups  # noqa: E402
from tlcourse.torch.source import get_source_model  # noqa: E402
from tlcourse.torch.training import evaluate, fit, predict, set_seed  # noqa: E402

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
    "build_linear_head",
    "Frozen",
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
    "port_to_keras",
    "predict",
    "read_checkpoint",
    "save_checkpoint",
    "set_seed",
]
