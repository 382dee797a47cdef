"""Learning-rate schedules shared by both frameworks, so both decay identically."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "constant")


def cosine_factor(step: int, total_steps: int, schedule: str = "cosine") -> float:
    """Multiplier of the initial learning rate after ``step`` of ``total_steps`` updates.

    ``"cosine"`` goes from 1 at step 0 to 0 at ``total_steps`` along half a cosine
    (Loshchilov and Hutter's SGDR without restarts); ``"constant"`` is always 1.

    Parameters
    ----------
    step : int
        Updates done so far.
    total_steps : int
        Updates planned in all.
    schedule : {"cosine", "constant"}

    Returns
    -------
    float
        A factor in ``[0, 1]``.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"Unknown schedule {schedule!r}; valid: {SCHEDULES}.")
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
