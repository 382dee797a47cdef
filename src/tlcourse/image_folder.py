"""A folder of images as readers have them: ``root/<class>/<image>`` (framework-free).

Scanning (which files are images, which cannot be read), a split by file into train,
validation and test folders, class weights for an imbalanced folder, and a folder of real
digits written from the course's data, with the odd broken file a real folder has.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlcourse.checks import check_positive_ints

# The suffixes torchvision's ImageFolder and Keras' image_dataset_from_directory both read.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLITS = ("train", "val", "test")


class ImageFolderError(ValueError):
    """The folder cannot be used for training; the message says why and what is valid."""


@dataclass(frozen=True)
class FolderScan:
    """What :func:`scan_image_folder` found.

    ``files[i]`` has label ``labels[i]``, an index into ``classes`` (sorted class folder
    names, the order ImageFolder and image_dataset_from_directory use). ``unreadable``
    lists files with an image suffix that PIL cannot decode; ``ignored`` lists files
    without one (``notes.txt``, ``.DS_Store``).
    """

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray
    unreadable: tuple[Path, ...]
    ignored: tuple[Path, ...]

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        n = np.bincount(self.labels, minlength=len(self.classes))
        return dict(zip(self.classes, n.tolist(), strict=True))


def is_readable_image(path: str | os.PathLike) -> bool:
    """True when ``path`` has an image suffix and PIL decodes it completely.

    Taught in :ref:`ch-your-own-images`.

    ``Image.verify`` checks the file's structure without decoding the pixels, and misses
    a truncated file; decoding with ``load`` catches both. Usable as torchvision's
    ``ImageFolder(is_valid_file=...)``.
    """
    from PIL import Image, UnidentifiedImageError

    if Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
        return False
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return False
    return True


def scan_image_folder(root: str | os.PathLike, *, warn: bool = True) -> FolderScan:
    """List the images of ``root/<class>/<image>``, skipping files that cannot be read.

    Taught in :ref:`ch-your-own-images`.

    Parameters
    ----------
    root : path
        A folder with one sub-folder per class (nested folders inside a class are read
        too, as ImageFolder does).
    warn : bool, default True
        Warn once, with their count, when unreadable files are skipped.

    Returns
    -------
    FolderScan

    Raises
    ------
    ImageFolderError
        If ``root`` is missing or not a folder, has fewer than two class folders, or a
        class folder has no readable image.
    """
    root = Path(root)
    if not root.exists():
        raise ImageFolderError(f"{root} does not exist; give a folder of class folders.")
    if not root.is_dir():
        raise ImageFolderError(f"{root} is a file; give a folder of class folders.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise ImageFolderError(
            f"{root} needs at least two class folders (root/<class>/<image>); found {found}."
        )
    files, labels, unreadable, ignored, empty = [], [], [], [], []
    for label, name in enumerate(classes):
        before = len(files)
        for path in sorted(p for p in (root / name).rglob("*") if p.is_file()):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                ignored.append(path)
            elif is_readable_image(path):
                files.append(path)
                labels.append(label)
            else:
                unreadable.append(path)
        if len(files) == before:
            empty.append(name)
    if empty:
        raise ImageFolderError(
            f"class folder(s) {', '.join(map(repr, empty))} in {root} have no readable "
            f"image ({', '.join(IMAGE_EXTENSIONS)})."
        )
    if unreadable and warn:
        warnings.warn(
            f"skipped {len(unreadable)} unreadable image file(s) in {root}, "
            f"e.g. {unreadable[0].relative_to(root)}",
            stacklevel=2,
        )
    return FolderScan(
        root, tuple(classes), tuple(files), np.array(labels, np.int64), tuple(unreadable),
        tuple(ignored),
    )  # fmt: skip


def split_by_file(
    labels: np.ndarray, *, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> dict[str, np.ndarray]:
    """Split file indices into train, validation and test, class by class (stratified).

    Taught in :ref:`ch-your-own-images`.

    Every class keeps at least one file in each split, so a rare class is seen in
    training, in model selection and in the report.

    Parameters
    ----------
    labels : np.ndarray
        Integer class of each file, shape ``(N,)``.
    val_fraction, test_fraction : float
        Shares of each class for validation and test; both in (0, 1), sum below 1.
    seed : int, default 0

    Returns
    -------
    dict
        ``{"train": idx, "val": idx, "test": idx}``, sorted and disjoint.

    Raises
    ------
    ImageFolderError
        If a class has fewer than three files, or the fractions are invalid.
    """
    labels = np.asarray(labels)
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ImageFolderError(
            "val_fraction and test_fraction must each be in (0, 1) and sum to less than 1; "
            f"got {val_fraction} and {test_fraction}."
        )
    rng = np.random.default_rng(seed)
    out = {name: [] for name in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 3:
            raise ImageFolderError(
                f"class {c} has {len(idx)} image(s); a split by file needs at least 3 per class."
            )
        n_test = min(max(1, round(test_fraction * len(idx))), len(idx) - 2)
        n_val = min(max(1, round(val_fraction * len(idx))), len(idx) - n_test - 1)
        out["test"].append(idx[:n_test])
        out["val"].append(idx[n_test : n_test + n_val])
        out["train"].append(idx[n_test + n_val :])
    return {name: np.sort(np.concatenate(parts)) for name, parts in out.items()}


def write_split_folders(
    scan: FolderScan, split: dict[str, np.ndarray], out: str | os.PathLike
) -> Path:
    """Copy the files of each split into ``out/<split>/<class>/``.

    Taught in :ref:`ch-your-own-images`.

    Both ``ImageFolder`` and ``image_dataset_from_directory`` then read the same three
    folders, so the two frameworks train, select and report on the same files. Files are
    hard-linked where the file system allows it (no copy), copied otherwise. A file in a
    nested folder is named by its path inside the class folder (``a/b.png`` becomes
    ``a__b.png``), so same-named files of different sub-folders stay apart.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    for name in SPLITS:
        for c in scan.classes:
            (out / name / c).mkdir(parents=True)
        for i in split[name]:
            src = scan.files[i]
            cls = scan.classes[scan.labels[i]]
            dst = out / name / cls / "__".join(src.relative_to(scan.root / cls).parts)
            if dst.exists():  # never write through a hard link onto a reader's file
                raise ImageFolderError(f"two files of class {cls!r} both map to {dst.name}.")
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    return out


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Weights ``N / (num_classes * n_c)``: every class counts as much in the loss.

    Taught in :ref:`ch-your-own-images`.

    The same rule as scikit-learn's ``class_weight="balanced"``; a balanced folder gets
    weight 1 everywhere.

    Raises
    ------
    ImageFolderError
        If a class has no example.
    """
    check_positive_ints(num_classes=num_classes)
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    if len(counts) > num_classes or (counts == 0).any():
        raise ImageFolderError(f"every class 0..{num_classes - 1} needs an example; got {counts}.")
    return (counts.sum() / (num_classes * counts)).astype(np.float32)


def load_image(path: str | os.PathLike, size: int, channels: int) -> np.ndarray:
    """Read one image of any size and colour mode as float32 ``(size, size, channels)`` in [0, 1].

    Taught in :ref:`ch-your-own-images`.

    Grey-scale, palette, RGBA and 16-bit files are converted to ``"L"`` (one channel) or
    ``"RGB"`` (three) first, then resized with bilinear interpolation.
    """
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    with Image.open(path) as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale, not clip
            img = Image.fromarray((np.asarray(img, np.uint32) >> 8).astype(np.uint8))
        img = img.convert("L" if channels == 1 else "RGB")
        img = img.resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(img, np.float32) / 255.0
    return arr[..., None] if channels == 1 else arr


def write_digit_folder(
    root: str | os.PathLike,
    X: np.ndarray,
    y: np.ndarray,
    *,
    keep: dict[int, int] | None = None,
    size: int = 32,
    seed: int = 0,
    broken: bool = True,
) -> Path:
    """Write digit images as RGB PNG files in ``root/<digit name>/``, like a real folder.

    Taught in :ref:`ch-your-own-images`.

    Parameters
    ----------
    root : path
        Created (replaced if it exists).
    X : np.ndarray
        Grey images in [0, 1], shape ``(N, H, W)``.
    y : np.ndarray
        Digit labels 0-9.
    keep : dict, optional
        ``{digit: n}``: keep only the first ``n`` images of that digit (an imbalanced folder).
    size : int, default 32
        Side of the written images (any size works: readers resize).
    seed : int, default 0
        Seed of the slight colour tint each image gets (three channels that differ).
    broken : bool, default True
        Also write a truncated PNG and a text file, as real folders have.

    Returns
    -------
    Path
        ``root``.
    """
    from PIL import Image

    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 3 or len(X) != len(y):
        raise ValueError(f"X must be (N, H, W) with one label each; got {X.shape} and {y.shape}.")
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    written = dict.fromkeys(range(10), 0)
    for i, (img, label) in enumerate(zip(X, y.tolist(), strict=True)):
        if keep is not None and written[label] >= keep.get(label, len(y)):
            continue
        folder = root / f"{label}_{names[label]}"
        folder.mkdir(parents=True, exist_ok=True)
        tint = rng.uniform(0.7, 1.0, size=3)
        rgb = (np.clip(img, 0, 1)[..., None] * tint * 255).astype(np.uint8)
        Image.fromarray(rgb, "RGB").resize((size, size), Image.Resampling.BILINEAR).save(
            folder / f"img_{i:05d}.png"
        )
        written[label] += 1
    if broken:
        first = root / f"0_{names[0]}"
        data = next(first.glob("*.png")).read_bytes()
        (first / "img_truncated.png").write_bytes(data[: len(data) // 2])
        (first / "notes.txt").write_text("scanned on the office printer\n")
    return root


def describe_skipped(scan: FolderScan) -> list[str]:
    """One line per skipped file, relative to the folder, with why it was skipped.

    Taught in :ref:`ch-your-own-images`.
    """
    lines = [f"{p.relative_to(scan.root)}: cannot be decoded" for p in scan.unreadable]
    lines += [f"{p.relative_to(scan.root)}: not an image suffix" for p in scan.ignored]
    return lines
