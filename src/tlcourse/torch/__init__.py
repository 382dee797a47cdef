"""PyTorch half of the course package; mirrors :mod:`tlcourse.keras` name for name."""

from tlcourse.torch.models import build_digit_net, count_parameters
from tlcourse.torch.training import evaluate, fit, predict, set_seed

__all__ = ["build_digit_net", "count_parameters", "evaluate", "fit", "predict", "set_seed"]
