"""What a partial restore did: the report both frameworks' ``load_matching`` return.

Caffe copied pretrained weights *by layer name* and required equal shapes. The modern
equivalent in either framework is: match entries by name, load those whose shapes agree,
leave the rest as initialised, and say exactly what happened. This module holds the
framework-free part: the matching rule and the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read, or does not fit the model it is loaded into."""


@dataclass
class RestoreReport:
    """Outcome of restoring part of a model from a checkpoint.

    Attributes
    ----------
    loaded : list of str
        Entries copied from the checkpoint.
    skipped : list of str
        Model entries excluded on request (they keep their current values).
    missing : list of str
        Model entries the checkpoint does not have.
    mismatched : dict of str to (checkpoint shape, model shape)
        Entries present in both with different shapes (not loaded).
    unexpected : list of str
        Checkpoint entries the model does not have.
    """

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per category, with counts and (for mismatches) the shapes."""
        lines = [
            f"loaded     {len(self.loaded):4d}",
            f"skipped    {len(self.skipped):4d}  (excluded on request)",
            f"missing    {len(self.missing):4d}  (not in the checkpoint)",
            f"mismatched {len(self.mismatched):4d}  (same name, different shape)",
            f"unexpected {len(self.unexpected):4d}  (in the checkpoint, not in the model)",
        ]
        for name, (ckpt, model) in self.mismatched.items():
            lines.append(f"  {name}: checkpoint {ckpt} vs model {model}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def check_exclusions(exclude: Iterable[str], valid: Sequence[str]) -> list[str]:
    """Return ``exclude`` as a list, or raise naming every unknown entry and the valid ones."""
    if isinstance(exclude, str):
        exclude = [exclude]
    exclude = list(exclude)
    unknown = [name for name in exclude if name not in valid]
    if unknown:
        raise ValueError(f"Unknown name(s) to exclude: {unknown}. Valid names are: {list(valid)}.")
    return exclude


def match_entries(
    model_shapes: Mapping[str, tuple[int, ...]],
    ckpt_shapes: Mapping[str, tuple[int, ...]],
    exclude: Sequence[str],
    sep: str,
) -> RestoreReport:
    """Sort every entry into loaded / skipped / missing / mismatched / unexpected.

    An entry is excluded when its name equals an excluded name or starts with it followed
    by ``sep`` (``"."`` in PyTorch, ``"/"`` in Keras), so excluding ``"head"`` skips
    ``head.weight`` and ``head.bias``.
    """
    report = RestoreReport()
    for name, shape in model_shapes.items():
        if any(name == e or name.startswith(e + sep) for e in exclude):
            report.skipped.append(name)
        elif name not in ckpt_shapes:
            report.missing.append(name)
        elif tuple(ckpt_shapes[name]) != tuple(shape):
            report.mismatched[name] = (tuple(ckpt_shapes[name]), tuple(shape))
        else:
            report.loaded.append(name)
    report.unexpected = [name for name in ckpt_shapes if name not in model_shapes]
    if not report.loaded:
        raise CheckpointError(
            "The checkpoint matches none of the model's entries, so nothing was loaded. "
            f"Model entries start {list(model_shapes)[:4]}; checkpoint entries start "
            f"{list(ckpt_shapes)[:4]}. Is it a checkpoint of a different architecture?"
        )
    return report
