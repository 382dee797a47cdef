"""Experiment loops that run unchanged on either framework, one module per chapter.

A *backend* is :mod:`tlcourse.torch` or :mod:`tlcourse.keras`: both expose ``set_seed``,
``build_digit_net``, ``fit`` and ``evaluate`` with the same signatures, so one loop serves
both halves of a chapter and the two columns of a side-by-side table come from the same code.

=====================  ============================================================
module                 chapter
=====================  ============================================================
``cross_domain``       what transfer learning is (train on one domain, test on all)
``few_shot``           feature extraction (recipes per labels per class, seeds)
``fine_tuning``        fine-tuning (strategies, transferability)
``self_training``      using the unlabelled target (teacher, pseudo-labels, students)
``gan_augmentation``   GAN augmentation (the five arms and their controls)
``adaptation``         domain adaptation (every method, every seed)
``summary``            mean and spread over seeds, for every chapter's tables
=====================  ============================================================
"""

from tlcourse.experiments.adaptation import (
    CRITERIA,
    run_adaptation,
    select_per_seed,
    selection_scores,
)
from tlcourse.experiments.cross_domain import run_cross_domain
from tlcourse.experiments.few_shot import (
    PROBE_RECIPES,
    SCRATCH_RECIPES,
    reuse_model,
    run_few_shot,
)
from tlcourse.experiments.fine_tuning import (
    TRANSFER_VARIANTS,
    run_lr_selection,
    run_strategies,
    run_transferability,
)
from tlcourse.experiments.gan_augmentation import (
    ARMS,
    make_arm_sets,
    run_gan_augmentation,
    score_samples,
)
from tlcourse.experiments.self_training import run_self_training, self_train
from tlcourse.experiments.summary import clearly_above, format_mean_std, no_clear_difference

__all__ = [
    "ARMS",
    "CRITERIA",
    "PROBE_RECIPES",
    "SCRATCH_RECIPES",
    "TRANSFER_VARIANTS",
    "clearly_above",
    "format_mean_std",
    "make_arm_sets",
    "no_clear_difference",
    "reuse_model",
    "run_adaptation",
    "run_cross_domain",
    "run_few_shot",
    "run_gan_augmentation",
    "run_lr_selection",
    "run_self_training",
    "run_strategies",
    "run_transferability",
    "score_samples",
    "select_per_seed",
    "selection_scores",
    "self_train",
]
