"""tlcourse.image_folder on tiny folders written here: scanning, the split by file, the split
folders, class weights, loading any colour mode, and the course's folder of digits."""

import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.utils.class_weight import compute_class_weight

from tlcourse.image_folder import (
    IMAGE_EXTENSIONS,
    SPLITS,
    FolderScan,
    ImageFolderError,
    balanced_class_weights,
    describe_skipped,
    is_readable_image,
    load_image,
    scan_image_folder,
    split_by_file,
    write_digit_folder,
    write_split_folders,
)


def write_image(path, mode="RGB", size=(9, 7), value=None, seed=0):
    """A small image file in ``mode`` (random pixels, or one ``value`` everywhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "I;16":
        pixels = rng.integers(0, 65536, (h, w)) if value is None else np.full((h, w), value)
        Image.fromarray(pixels.astype(np.uint16)).save(path)
        return path
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        img.convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(path)
        return path
    bands = len(Image.new(mode, (1, 1)).getbands())
    if value is None:
        pixels = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    else:
        pixels = np.broadcast_to(np.asarray(value, np.uint8), (h, w, bands)).copy()
    img = Image.fromarray(pixels[..., 0] if bands == 1 else pixels)
    if img.mode != mode:
        img = img.convert(mode)
    img.save(path)
    return path


def truncated_png(path):
    whole = write_image(path.with_name("whole_" + path.name), size=(40, 40)).read_bytes()
    path.with_name("whole_" + path.name).unlink()
    path.write_bytes(whole[: len(whole) // 2])
    return path


@pytest.fixture
def folder(tmp_path):
    """Three classes (created out of order), one nested folder, broken and ignored files."""
    root = tmp_path / "photos"
    for k in range(4):
        write_image(root / "zebra" / f"z{k}.png", seed=k)
    for k in range(3):
        write_image(root / "ant" / f"a{k}.jpg", seed=10 + k)
    write_image(root / "ant" / "more" / "a_nested.png", seed=20)
    for k in range(5):
        write_image(root / "moth" / f"m{k}.jpeg", mode="L", seed=30 + k)
    truncated_png(root / "zebra" / "cut.png")
    (root / "moth" / "fake.jpg").write_text("not a jpeg")
    (root / "ant" / "notes.txt").write_text("labels checked")
    (root / "moth" / ".DS_Store").write_bytes(b"\0\1")
    return root


# --- scan_image_folder -------------------------------------------------------------------


def test_classes_are_sorted_and_every_label_names_the_files_folder(folder):
    scan = scan_image_folder(folder, warn=False)
    assert isinstance(scan, FolderScan)
    assert scan.classes == ("ant", "moth", "zebra")
    assert len(scan.files) == len(scan.labels) == 4 + 4 + 5
    assert scan.labels.dtype == np.int64
    for path, label in zip(scan.files, scan.labels, strict=True):
        assert path.relative_to(folder).parts[0] == scan.classes[label]
    assert scan.counts() == {"ant": 4, "moth": 5, "zebra": 4}
    assert folder / "ant" / "more" / "a_nested.png" in scan.files  # nested folders are read


def test_unreadable_files_are_skipped_listed_and_counted_in_one_warning(folder):
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image file\(s\)") as caught:
        scan = scan_image_folder(folder)
    assert len(caught) == 1
    assert set(scan.unreadable) == {folder / "zebra" / "cut.png", folder / "moth" / "fake.jpg"}
    assert not set(scan.unreadable) & set(scan.files)
    # Files without an image suffix are neither images nor unreadable: they are ignored.
    assert set(scan.ignored) == {folder / "ant" / "notes.txt", folder / "moth" / ".DS_Store"}
    assert all(p.suffix.lower() in IMAGE_EXTENSIONS for p in scan.files)
    assert sorted(describe_skipped(scan)) == sorted(
        [
            "zebra/cut.png: cannot be decoded",
            "moth/fake.jpg: cannot be decoded",
            "ant/notes.txt: not an image suffix",
            "moth/.DS_Store: not an image suffix",
        ]
    )


def test_no_warning_when_asked_or_when_nothing_is_unreadable(folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan = scan_image_folder(folder, warn=False)
        assert len(scan.unreadable) == 2
        clean = tmp_path / "clean"
        for c in ("a", "b"):
            write_image(clean / c / "x.png")
        assert scan_image_folder(clean).unreadable == ()


def test_is_readable_image_decodes_the_whole_file(tmp_path):
    good = write_image(tmp_path / "good.png", size=(40, 40))
    cut = truncated_png(tmp_path / "cut.png")
    assert is_readable_image(good)
    assert is_readable_image(write_image(tmp_path / "good.JPG"))
    assert not is_readable_image(cut)
    assert not is_readable_image(tmp_path / "missing.png")
    text = tmp_path / "text.png"
    text.write_text("hello")
    assert not is_readable_image(text)
    renamed = tmp_path / "image.txt"  # a good PNG with a suffix no reader takes
    renamed.write_bytes(good.read_bytes())
    assert not is_readable_image(renamed)


def _missing(tmp_path):
    return tmp_path / "nowhere"


def _a_file(tmp_path):
    path = tmp_path / "photo.png"
    write_image(path)
    return path


def _no_class(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "loose.png").write_bytes(write_image(tmp_path / "x.png").read_bytes())
    return root


def _one_class(tmp_path):
    root = tmp_path / "one"
    for k in range(3):
        write_image(root / "cats" / f"{k}.png")
    return root


def _class_without_images(tmp_path):
    root = tmp_path / "root"
    for k in range(3):
        write_image(root / "cats" / f"{k}.png")
    (root / "dogs").mkdir()
    (root / "dogs" / "notes.txt").write_text("todo")
    truncated_png(root / "dogs" / "cut.png")
    (root / "eels").mkdir()
    return root


@pytest.mark.parametrize(
    "make, message",
    [
        (_missing, r"nowhere does not exist"),
        (_a_file, r"photo\.png is a file"),
        (_no_class, r"at least two class folders .*found none"),
        (_one_class, r"at least two class folders .*found only 'cats'"),
        (_class_without_images, r"'dogs', 'eels' in .* have no readable image"),
    ],
)
def test_unusable_folders_are_refused_with_the_reason(tmp_path, make, message):
    root = make(tmp_path)
    with pytest.raises(ImageFolderError, match=message):
        scan_image_folder(root)
    assert issubclass(ImageFolderError, ValueError)


# --- split_by_file -----------------------------------------------------------------------

COUNTS = (3, 4, 7, 20, 51)


@pytest.fixture
def labels():
    rng = np.random.default_rng(5)
    return rng.permutation(np.repeat(np.arange(len(COUNTS)), COUNTS))


def test_split_is_stratified_disjoint_sorted_and_complete(labels):
    split = split_by_file(labels, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert set(split) == set(SPLITS)
    for idx in split.values():
        assert np.array_equal(idx, np.sort(idx))
    every = np.concatenate([split[s] for s in SPLITS])
    assert len(every) == len(labels)  # disjoint ...
    assert np.array_equal(np.sort(every), np.arange(len(labels)))  # ... and complete
    for c, n in enumerate(COUNTS):
        in_split = {s: int(np.sum(labels[split[s]] == c)) for s in SPLITS}
        assert min(in_split.values()) >= 1, (c, in_split)
        assert sum(in_split.values()) == n
        if n >= 20:  # large classes: each share within one file of its fraction
            assert abs(in_split["val"] - 0.2 * n) <= 1
            assert abs(in_split["test"] - 0.1 * n) <= 1


@pytest.mark.parametrize("n", range(3, 13))
@pytest.mark.parametrize("fractions", [(0.15, 0.15), (0.3, 0.3), (0.05, 0.05), (0.45, 0.45)])
def test_every_class_keeps_a_file_in_every_split(n, fractions):
    labels = np.repeat([0, 1], [n, 3])
    split = split_by_file(labels, val_fraction=fractions[0], test_fraction=fractions[1])
    for s in SPLITS:
        assert set(labels[split[s]].tolist()) == {0, 1}, (s, split)
    assert sum(len(v) for v in split.values()) == len(labels)


def test_a_large_test_fraction_still_leaves_train_and_val_a_file():
    labels = np.repeat([0, 1], 3)
    split = split_by_file(labels, val_fraction=0.05, test_fraction=0.9)
    every = np.concatenate([split[s] for s in SPLITS])
    assert np.array_equal(np.sort(every), np.arange(6))
    for s in SPLITS:
        assert set(labels[split[s]].tolist()) == {0, 1}


def test_split_repeats_for_a_seed_and_changes_with_it(labels):
    first = split_by_file(labels, seed=1)
    again = split_by_file(labels, seed=1)
    other = split_by_file(labels, seed=2)
    assert all(np.array_equal(first[s], again[s]) for s in SPLITS)
    assert not all(np.array_equal(first[s], other[s]) for s in SPLITS)
    # the sizes only depend on the counts, not on the seed
    assert [len(first[s]) for s in SPLITS] == [len(other[s]) for s in SPLITS]


@pytest.mark.parametrize(
    "val, test", [(0, 0.15), (0.15, 0), (1, 0.1), (0.1, 1), (-0.1, 0.2), (0.5, 0.5), (0.6, 0.5)]
)
def test_split_refuses_bad_fractions(labels, val, test):
    with pytest.raises(ImageFolderError, match=r"must each be in \(0, 1\) and sum to less"):
        split_by_file(labels, val_fraction=val, test_fraction=test)


@pytest.mark.parametrize("n", [1, 2])
def test_split_refuses_a_class_with_fewer_than_three_files(n):
    labels = np.repeat([0, 1, 2], [5, n, 5])
    with pytest.raises(ImageFolderError, match=rf"class 1 has {n} image\(s\).*at least 3"):
        split_by_file(labels)


# --- balanced_class_weights --------------------------------------------------------------


def test_class_weights_match_scikit_learns_balanced_rule(labels):
    weights = balanced_class_weights(labels, len(COUNTS))
    expected = compute_class_weight("balanced", classes=np.arange(len(COUNTS)), y=labels)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    # the weighted count of every class is the same: N / num_classes
    np.testing.assert_allclose(weights * np.array(COUNTS), len(labels) / len(COUNTS), rtol=1e-6)
    np.testing.assert_array_equal(balanced_class_weights(np.repeat([0, 1, 2], 4), 3), 1.0)


def test_class_weights_refuse_a_class_without_example():
    with pytest.raises(ImageFolderError, match=r"every class 0\.\.3 needs an example"):
        balanced_class_weights(np.array([0, 1, 1, 3]), 4)
    with pytest.raises(ImageFolderError, match="every class 0..1"):
        balanced_class_weights(np.array([0, 1, 2]), 2)  # a label beyond num_classes


# --- write_split_folders -----------------------------------------------------------------


def test_split_folders_hold_exactly_each_splits_files(folder, tmp_path):
    scan = scan_image_folder(folder, warn=False)
    split = split_by_file(scan.labels, seed=4)
    out = tmp_path / "out" / "data"
    (out / "train" / "stale").mkdir(parents=True)  # an earlier run's leftovers go
    (out / "train" / "stale" / "old.png").write_bytes(b"old")
    assert write_split_folders(scan, split, out) == out
    assert sorted(p.name for p in out.iterdir()) == sorted(SPLITS)
    for s in SPLITS:
        assert sorted(p.name for p in (out / s).iterdir()) == list(scan.classes)
        for label, c in enumerate(scan.classes):
            expected = {  # a nested file is named by its path inside the class folder
                "__".join(scan.files[i].relative_to(folder / c).parts): scan.files[i].read_bytes()
                for i in split[s]
                if scan.labels[i] == label
            }
            written = {p.name: p.read_bytes() for p in (out / s / c).iterdir()}
            assert written == expected, (s, c)
    assert not (out / "train" / "stale").exists()
    # readers find the same images in the split folders as in the scan
    assert sum(len(scan_image_folder(out / s).files) for s in SPLITS) == len(scan.files)


def test_split_folders_keep_same_named_files_of_nested_folders_apart(tmp_path):
    root = tmp_path / "photos"
    for c in ("cats", "dogs"):
        for sub in ("2023", "2024"):
            for k in range(3):
                write_image(root / c / sub / f"img{k}.png", seed=len(list(root.rglob("*.png"))))
    before = {p: p.read_bytes() for p in root.rglob("*.png")}
    scan = scan_image_folder(root)
    split = split_by_file(scan.labels, seed=0)
    out = write_split_folders(scan, split, tmp_path / "data")
    assert {p: p.read_bytes() for p in root.rglob("*.png")} == before  # originals untouched
    for s in SPLITS:
        assert len(list((out / s).rglob("*.png"))) == len(split[s])


# --- load_image --------------------------------------------------------------------------

MODES = [
    ("RGB", "png"),
    ("RGB", "jpg"),
    ("RGBA", "png"),
    ("P", "png"),
    ("L", "png"),
    ("L", "jpg"),
    ("LA", "png"),
    ("1", "png"),
    ("I;16", "png"),
    ("CMYK", "jpg"),
]


@pytest.mark.parametrize("mode, suffix", MODES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("file_size", [(37, 23), (5, 61), (16, 16)])
def test_every_colour_mode_loads_as_float32_in_unit_range(
    tmp_path, mode, suffix, channels, file_size
):
    path = write_image(tmp_path / f"img.{suffix}", mode=mode, size=file_size)
    with Image.open(path) as img:
        assert img.mode == mode  # the file really is in that mode
    x = load_image(path, 12, channels)
    assert x.dtype == np.float32
    assert x.shape == (12, 12, channels)
    assert 0.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize(
    "mode, value, rgb",
    [
        ("RGB", (200, 100, 50), (200, 100, 50)),
        ("RGBA", (200, 100, 50, 255), (200, 100, 50)),
        ("L", 77, (77, 77, 77)),
        ("I;16", 257 * 100, (100, 100, 100)),  # 16-bit 0-65535 scaled to 0-255
    ],
)
def test_a_uniform_image_keeps_its_colour(tmp_path, mode, value, rgb):
    path = write_image(tmp_path / "one.png", mode=mode, size=(13, 29), value=value)
    np.testing.assert_allclose(
        load_image(path, 8, 3), np.broadcast_to(np.array(rgb) / 255, (8, 8, 3)), atol=1e-6
    )
    r, g, b = rgb
    grey = (0.299 * r + 0.587 * g + 0.114 * b) / 255  # ITU-R 601, PIL's "L"
    np.testing.assert_allclose(load_image(path, 8, 1), np.full((8, 8, 1), grey), atol=1.01 / 255)


def test_a_palette_image_loads_its_palette_colours(tmp_path):
    img = Image.new("P", (21, 9))
    img.putpalette([0, 0, 0, 30, 160, 220] + [0] * 762)
    img.paste(1, (0, 0, 21, 9))
    img.save(tmp_path / "p.png")
    np.testing.assert_allclose(
        load_image(tmp_path / "p.png", 4, 3)[0, 0], np.array([30, 160, 220]) / 255, atol=1e-6
    )


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    path = write_image(tmp_path / "deep.png", mode="I;16", size=(10, 10), value=257 * 64)
    np.testing.assert_allclose(load_image(path, 4, 1), 64 / 255, atol=1e-3)


def test_load_image_resizes_without_transposing(tmp_path):
    pixels = np.zeros((23, 37), np.uint8)
    pixels[:, 19:] = 255  # dark left, light right; wider than tall
    Image.fromarray(pixels).save(tmp_path / "half.png")
    x = load_image(tmp_path / "half.png", 16, 1)[..., 0]
    assert x.shape == (16, 16)
    np.testing.assert_allclose(x[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(x[:, -1], 1.0, atol=1e-6)
    assert np.all(np.diff(x, axis=1) >= -1e-6)  # rows rise left to right
    np.testing.assert_allclose(np.diff(x, axis=0), 0.0, atol=1e-6)  # every row the same


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_load_image_refuses_other_channel_counts(tmp_path, channels):
    path = write_image(tmp_path / "img.png")
    with pytest.raises(ValueError, match=f"channels must be 1 or 3, got {channels}"):
        load_image(path, 8, channels)


# --- write_digit_folder ------------------------------------------------------------------


@pytest.fixture(scope="module")
def some_digits():
    rng = np.random.default_rng(0)
    y = np.array([3, 0, 1, 3, 0, 2, 3, 1, 0, 3, 2, 1], np.int64)
    X = rng.uniform(0, 1, (len(y), 28, 28)).astype(np.float32)
    X[:, :4] = 0.0  # a dark band: the tint must leave it dark
    return X, y


def test_digit_folder_writes_rgb_pngs_of_each_image_in_its_digits_folder(tmp_path, some_digits):
    X, y = some_digits
    root = write_digit_folder(tmp_path / "digits", X, y, size=28, broken=False)
    assert root == tmp_path / "digits"
    assert sorted(p.name for p in root.iterdir()) == ["0_zero", "1_one", "2_two", "3_three"]
    files = sorted(root.rglob("*"))
    assert all(p.suffix == ".png" for p in files if p.is_file())
    assert len([p for p in files if p.is_file()]) == len(y)
    for i, (img, label) in enumerate(zip(X, y, strict=True)):
        names = {0: "0_zero", 1: "1_one", 2: "2_two", 3: "3_three"}
        path = root / names[int(label)] / f"img_{i:05d}.png"
        with Image.open(path) as written:
            assert written.mode == "RGB" and written.size == (28, 28)
            rgb = np.asarray(written, np.float32)
        bright = img > 0.3
        tint = rgb[bright] / (img[bright, None] * 255)  # one factor per channel
        assert np.all(tint.std(axis=0) < 0.02)
        assert np.all((tint.mean(axis=0) > 0.68) & (tint.mean(axis=0) <= 1.0))
        assert rgb[:4].max() == 0
    scan = scan_image_folder(root)
    assert scan.unreadable == () and scan.ignored == ()


def test_digit_folder_resizes_and_keeps_the_first_n_of_a_digit(tmp_path, some_digits):
    X, y = some_digits
    root = write_digit_folder(tmp_path / "digits", X, y, keep={3: 2, 0: 1}, size=17, broken=False)
    kept = {d.name: sorted(p.name for p in d.iterdir()) for d in root.iterdir()}
    first = {d: [f"img_{i:05d}.png" for i in np.flatnonzero(y == d)] for d in range(4)}
    assert (
        kept
        == {
            "0_zero": first[0][:1],
            "1_one": first[1],  # not in keep: every image
            "2_two": first[2],
            "3_three": first[3][:2],
        }
    )
    with Image.open(root / "3_three" / first[3][0]) as img:
        assert img.size == (17, 17)


def test_digit_folder_adds_one_broken_png_and_one_text_file(tmp_path, some_digits):
    X, y = some_digits
    root = tmp_path / "digits"
    root.mkdir()
    (root / "old.txt").write_text("replaced")
    write_digit_folder(root, X, y)
    assert not (root / "old.txt").exists()
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        scan = scan_image_folder(root)
    assert scan.unreadable == (root / "0_zero" / "img_truncated.png",)
    assert scan.ignored == (root / "0_zero" / "notes.txt",)
    assert len(scan.files) == len(y)
    assert [p.suffix for p in root.rglob("*.txt")] == [".txt"]
    assert len([p for p in root.rglob("*.png") if not is_readable_image(p)]) == 1


def test_digit_folder_refuses_images_that_are_not_grey_stacks(tmp_path):
    with pytest.raises(ValueError, match=r"X must be \(N, H, W\)"):
        write_digit_folder(tmp_path / "d", np.zeros((4, 28, 28, 1)), np.zeros(4, int))
    with pytest.raises(ValueError, match="one label each"):
        write_digit_folder(tmp_path / "d", np.zeros((4, 28, 28)), np.zeros(3, int))
