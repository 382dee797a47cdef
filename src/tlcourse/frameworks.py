"""Let PyTorch and TensorFlow share one Python process safely.

PyTorch (through its optional GPU compiler Triton) and TensorFlow each bundle their own
copy of LLVM. If TensorFlow is loaded first, loading Triton afterwards crashes the process
with a segmentation fault in LLVM's start-up code; PyTorch loads Triton lazily, the first
time an optimiser steps, so the crash appears far from its cause. Loaded in the other
order, the two live together. The course imports both in one kernel, so
:mod:`tlcourse.keras` and :mod:`tlcourse.torch` call these guards before importing their
framework.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings


def load_triton_before_tensorflow() -> None:
    """Import Triton now if it is installed and TensorFlow is not yet loaded."""
    if "tensorflow" in sys.modules or "triton" in sys.modules:
        return
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def block_triton_after_tensorflow() -> None:
    """If TensorFlow is already loaded and Triton is not, stop PyTorch from loading it.

    PyTorch treats a missing Triton as "no GPU compiler", which changes nothing on the
    CPU; on a GPU, ``torch.compile`` then falls back to slower kernels. Import
    :mod:`tlcourse.torch` (or ``triton``) before TensorFlow to keep Triton.
    """
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        if importlib.util.find_spec("triton") is not None:
            warnings.warn(
                "TensorFlow was imported before PyTorch: Triton is disabled in this process "
                "to avoid a known crash between the two (see tlcourse.frameworks).",
                RuntimeWarning,
                stacklevel=3,
            )
        sys.modules["triton"] = None  # makes `import triton` raise ImportError
