"""PyTorch half of the course package; mirrors :mod:`tlcourse.keras` name for name."""

from tlcourse.frameworks import block_triton_after_tensorflow

block_triton_after_tensorflow()

from tlcourse.torch.models import build_digit_net, count_parameters  # noqa: E402
from tlcourse.torch.training import evaluate, fit, predict, set_seed  # noqa: E402

__all__ = ["build_digit_net", "count_parameters", "evaluate", "fit", "predict", "set_seed"]
