"""The ``tlcourse-finetune`` command: one-line errors for bad input, an offline ImageNet
download, and end-to-end runs whose metrics.json is checked against the files it wrote."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image
from sklearn.utils.class_weight import compute_class_weight

from tlcourse.finetune_command import main
from tlcourse.image_folder import SPLITS, scan_image_folder, write_digit_folder

PREFIX = "tlcourse-finetune: error:"


def write_folder(root, counts):
    """``root/<class>/`` with ``counts[class]`` small RGB PNG files each."""
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


@pytest.fixture
def small_folder(tmp_path):
    return write_folder(tmp_path / "photos", {"cats": 3, "dogs": 3})


def run_main(capsys, argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, out, err, *fragments):
    assert status == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert out == ""


# --- bad input: one line on stderr, exit status 2 ------------------------------------------


def _missing(tmp_path):
    return tmp_path / "nowhere"


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _single_class(tmp_path):
    return write_folder(tmp_path / "one", {"cats": 4})


def _class_without_images(tmp_path):
    root = write_folder(tmp_path / "root", {"cats": 4, "dogs": 0})
    (root / "dogs" / "notes.txt").write_text("todo")
    return root


@pytest.mark.parametrize(
    "make, fragments",
    [
        (_missing, ["nowhere does not exist"]),
        (_empty, ["at least two class folders", "found none"]),
        (_single_class, ["at least two class folders", "found only 'cats'"]),
        (_class_without_images, ["'dogs'", "no readable image"]),
    ],
)
def test_an_unusable_folder_is_one_line_and_status_2(tmp_path, capsys, make, fragments):
    root = make(tmp_path)
    result = run_main(capsys, [root, "--out", tmp_path / "run"])
    assert_one_line_error(*result, *fragments)
    assert not (tmp_path / "run").exists()  # refused before anything is written


OPTION_ERRORS = [
    (["--backbone", "vgg16"], ["--backbone", "invalid choice", "'vgg16'"]),
    (["--framework", "keras", "--backbone", "resnet18"], ["resnet18 is not in keras"]),
    (["--weights", "course", "--backbone", "resnet18"], ["--weights course exists for"]),
    (["--weights", "imagenet", "--backbone", "digit-net"], ["digit-net has no ImageNet"]),
    (["--epochs", "0"], ["--epochs must be at least 1"]),
    (["--batch-size", "0"], ["--batch-size must be at least 1"]),
    (["--lr", "-0.01"], ["--lr must be positive", "-0.01"]),
    (["--lr", "0.01", "0"], ["--lr must be positive"]),
    (["--image-size", "64"], ["digit-net reads 28x28"]),
    (["--backbone", "resnet18", "--weights", "none", "--image-size", "16"], ["at least 32"]),
    (["--epochs", "two"], ["--epochs", "invalid int value"]),
]


@pytest.mark.parametrize("options, fragments", OPTION_ERRORS)
def test_a_bad_option_is_one_line_and_status_2(small_folder, tmp_path, capsys, options, fragments):
    result = run_main(capsys, [small_folder, "--out", tmp_path / "run", *options])
    assert_one_line_error(*result, *fragments)
    assert not (tmp_path / "run").exists()


def test_out_pointing_at_a_file_is_refused(small_folder, tmp_path, capsys):
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    result = run_main(capsys, [small_folder, "--out", taken])
    assert_one_line_error(*result, "--out", "is a file")
    assert taken.read_text() == "keep me"


def test_a_missing_out_option_is_one_line(small_folder, capsys):
    assert_one_line_error(*run_main(capsys, [small_folder]), "--out", "required")


@pytest.mark.slow
def test_the_installed_script_gives_one_line_and_status_2(tmp_path):
    script = Path(sys.executable).parent / "tlcourse-finetune"
    assert script.exists()
    done = subprocess.run(
        [str(script), str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(PREFIX) and "does not exist" in done.stderr
    assert done.stdout == ""


def test_an_imagenet_download_that_fails_offline_is_one_line(
    small_folder, tmp_path, capsys, monkeypatch
):
    import torchvision

    calls = []

    def offline(*args, **kwargs):
        calls.append(kwargs)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights.DEFAULT, "get_state_dict", offline)
    result = run_main(
        capsys,
        [small_folder, "--out", tmp_path / "run", "--framework", "torch", "--backbone",
         "resnet18", "--weights", "imagenet", "--epochs", "1", "--lr", "0.01", "--quiet"],
    )  # fmt: skip
    assert len(calls) == 1  # the download was attempted, and failed
    assert_one_line_error(
        *result,
        "could not get the ImageNet weights for resnet18",
        "Temporary failure in name resolution",
        "--weights none",
    )
    assert not (tmp_path / "run" / "metrics.json").exists()


# --- end to end ----------------------------------------------------------------------------

KEEP = {d: 30 for d in range(10)} | {7: 12}  # one rarer digit: class weights differ


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    from tlcourse.data import load_uci_digits

    X, y = load_uci_digits()
    return write_digit_folder(tmp_path_factory.mktemp("folder") / "digits", X, y, keep=KEEP)


@pytest.fixture(scope="module")
def trained_source(tmp_path_factory):
    """The course's source model, trained once for this module in a cache of its own."""
    cache = tmp_path_factory.mktemp("source_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLCOURSE_CACHE_DIR", str(cache))
        from tlcourse.torch.source import get_source_model

        get_source_model(quiet=True)
    return cache / "source_models"


@pytest.fixture
def course_weights(private_cache, trained_source):
    """Puts the trained source model into this test's private cache (see conftest.py)."""
    shutil.copytree(trained_source, private_cache / "source_models")


def run_command(capsys, root, out, *options):
    status, stdout, stderr = run_main(capsys, [root, "--out", out, "--quiet", *options])
    assert status == 0, stderr
    return json.loads((out / "metrics.json").read_text()), stdout, stderr


def split_counts(out, split, classes):
    return np.array([len(list((out / "data" / split / c).iterdir())) for c in classes])


def check_metrics(m, root, out, framework, epochs):
    """metrics.json against the folder, the split folders and itself."""
    scan = scan_image_folder(root, warn=False)
    classes = list(scan.classes)
    assert m["framework"] == framework and m["classes"] == classes
    per_split = {s: split_counts(out, s, classes) for s in SPLITS}
    assert m["images"] == {s: int(per_split[s].sum()) for s in SPLITS}
    assert sum(m["images"].values()) == len(scan.files)
    assert (
        m["images_per_class"]
        == scan.counts()
        == dict(zip(classes, sum(per_split.values()).tolist(), strict=True))
    )
    assert sorted(m["skipped"]) == [
        "0_zero/img_truncated.png: cannot be decoded",
        "0_zero/notes.txt: not an image suffix",
    ]
    train_labels = np.repeat(np.arange(len(classes)), per_split["train"])
    expected = compute_class_weight("balanced", classes=np.arange(len(classes)), y=train_labels)
    np.testing.assert_allclose(m["class_weights"], expected, rtol=1e-6)

    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (len(classes), len(classes))
    assert cm.sum() == m["images"]["test"]
    np.testing.assert_array_equal(cm.sum(axis=1), per_split["test"])  # rows: true class
    per_class = np.diag(cm) / cm.sum(axis=1)
    np.testing.assert_allclose([m["test_accuracy_per_class"][c] for c in classes], per_class)
    assert m["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())

    history = m["history"]
    assert [h["epoch"] for h in history] == list(range(1, 2 * epochs + 1))
    assert [h["phase"] for h in history] == [1] * epochs + [2] * epochs
    val = [h["val_accuracy"] for h in history]
    assert m["best_epoch"] == int(np.argmax(val)) + 1
    assert m["val_accuracy"] == max(val)
    n_val = m["images"]["val"]
    assert all(abs(v * n_val - round(v * n_val)) < 1e-6 for v in val)  # a share of files
    assert all(np.isfinite(h["loss"]) for h in history)

    with Image.open(out / "confusion_matrix.png") as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert Path(m["model"]).exists()
    return cm


def check_summary(stdout, stderr, m):
    assert stdout.strip().splitlines() == [stdout.strip()]
    line = stdout.strip()
    assert line.startswith(f"tlcourse-finetune: {m['framework']} {m['backbone']}, lr ")
    assert f"best epoch {m['best_epoch']} of {len(m['history'])}" in line
    assert f"test {100 * m['test_accuracy']:.1f}% on {m['images']['test']} images" in line
    assert f"validation {100 * m['val_accuracy']:.1f}%" in line
    assert line.endswith(f"model {m['model']}")
    assert "tlcourse-finetune: warning: skipped 1 unreadable image file(s)" in stderr


def torch_scores(m, out):
    """Reload model.pt into a fresh model; its accuracy and confusion matrix per split."""
    import torch

    from tlcourse.torch import folder

    model, _ = folder.build_backbone_model(
        m["backbone"], len(m["classes"]), weights="none", seed=123
    )
    model.load_state_dict(torch.load(m["model"], weights_only=True))
    model.eval()
    transform = folder.build_transform(m["backbone"], m["image_size"])
    loaders = folder.make_loaders(out / "data", transform, batch_size=7)
    scores = {}
    with torch.no_grad():
        for split in ("val", "test"):
            y = np.concatenate([t.numpy() for _, t in loaders[split]])
            pred = np.concatenate([model(X).argmax(1).numpy() for X, _ in loaders[split]])
            cm = np.zeros((len(m["classes"]),) * 2, int)
            np.add.at(cm, (y, pred), 1)
            scores[split] = (float(np.mean(pred == y)), cm)
    return scores


@pytest.mark.slow
def test_torch_end_to_end_on_a_digit_folder(digit_folder, course_weights, tmp_path, capsys):
    out = tmp_path / "run"
    m, stdout, stderr = run_command(
        capsys, digit_folder, out, "--framework", "torch", "--epochs", "1", "--lr", "0.01"
    )
    cm = check_metrics(m, digit_folder, out, "torch", epochs=1)
    check_summary(stdout, stderr, m)
    assert m["backbone"] == "digit-net" and m["weights"] == "course" and m["lr"] == 0.01
    assert m["model"] == str(out / "model.pt")
    # course weights on real digits: far above chance (--weights none scores 0.105 here)
    assert m["test_accuracy"] > 0.25
    scores = torch_scores(m, out)
    assert scores["test"][0] == pytest.approx(m["test_accuracy"])
    np.testing.assert_array_equal(scores["test"][1], cm)
    assert scores["val"][0] == pytest.approx(m["val_accuracy"])  # the best epoch was kept


@pytest.mark.slow
def test_torch_keeps_the_learning_rate_with_the_best_validation(
    digit_folder, course_weights, tmp_path, capsys
):
    out = tmp_path / "run"
    m, _, _ = run_command(
        capsys, digit_folder, out, "--epochs", "1", "--lr", "0.001", "0.01", "--seed", "1"
    )
    by_lr = m["val_accuracy_by_lr"]
    assert set(by_lr) == {"0.001", "0.01"}
    kept = max(by_lr, key=lambda k: (by_lr[k], -list(by_lr).index(k)))  # earlier on a tie
    assert m["lr"] == float(kept)
    assert by_lr[kept] == max(by_lr.values()) == m["val_accuracy"]
    # the saved model is the kept rate's
    assert torch_scores(m, out)["val"][0] == pytest.approx(m["val_accuracy"])
    # each rate's score is that of a run with that rate alone (a run repeats for a seed)
    alone, _, _ = run_command(
        capsys, digit_folder, tmp_path / "alone", "--epochs", "1", "--lr", "0.001", "--seed", "1"
    )
    assert by_lr["0.001"] == alone["val_accuracy"]


@pytest.mark.slow
def test_keras_end_to_end_on_a_digit_folder(digit_folder, course_weights, tmp_path, capsys):
    import keras

    from tlcourse.keras.folder import make_datasets

    out = tmp_path / "run"
    m, stdout, stderr = run_command(
        capsys, digit_folder, out, "--framework", "keras", "--epochs", "1", "--lr", "0.01"
    )
    cm = check_metrics(m, digit_folder, out, "keras", epochs=1)
    check_summary(stdout, stderr, m)
    assert m["model"] == str(out / "model.keras")
    assert m["test_accuracy"] > 0.25  # as in torch: --weights none scores 0.105
    model = keras.models.load_model(m["model"])
    data = make_datasets(out / "data", "digit-net", 28, batch_size=9)
    for split, expected in (("val", m["val_accuracy"]), ("test", m["test_accuracy"])):
        y = np.concatenate([np.asarray(t) for _, t in data[split]])
        pred = np.concatenate(
            [np.asarray(model(X, training=False)).argmax(1) for X, _ in data[split]]
        )
        assert float(np.mean(pred == y)) == pytest.approx(expected), split
        if split == "test":
            found = np.zeros_like(cm)
            np.add.at(found, (y, pred), 1)
            np.testing.assert_array_equal(found, cm)


# --- the ImageNet architectures, random weights, tiny -------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from tlcourse.data import load_uci_digits

    X, y = load_uci_digits()
    few = np.isin(y, [0, 1, 2])
    root = tmp_path_factory.mktemp("tiny") / "digits"
    return write_digit_folder(root, X[few], y[few], keep=dict.fromkeys(range(3), 8), broken=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "framework, backbone",
    [("torch", "resnet18"), ("torch", "mobilenet_v2"), ("keras", "mobilenet_v2")],
)
def test_imagenet_architectures_run_with_random_weights(
    tiny_folder, tmp_path, capsys, framework, backbone
):
    out = tmp_path / "run"
    m, stdout, _ = run_command(
        capsys, tiny_folder, out, "--framework", framework, "--backbone", backbone,
        "--weights", "none", "--image-size", "32", "--epochs", "1", "--lr", "0.01",
        "--batch-size", "8",
    )  # fmt: skip
    assert (m["framework"], m["backbone"], m["weights"]) == (framework, backbone, "none")
    assert m["image_size"] == 32 and m["classes"] == ["0_zero", "1_one", "2_two"]
    assert sum(m["images"].values()) == 24 and m["skipped"] == []
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == m["images"]["test"]
    assert m["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert len(m["history"]) == 2 and Path(m["model"]).exists()
    assert stdout.startswith(f"tlcourse-finetune: {framework} {backbone}, lr 0.01")


def test_keras_training_order_depends_on_the_seed_alone(tiny_folder, tmp_path):
    import tensorflow as tf

    from tlcourse.image_folder import split_by_file, write_split_folders
    from tlcourse.keras.folder import make_datasets

    scan = scan_image_folder(tiny_folder)
    data = write_split_folders(scan, split_by_file(scan.labels), tmp_path / "data")
    orders = []
    for global_seed in (1, 2):  # whatever ran before in the process
        tf.random.set_seed(global_seed)
        train = make_datasets(data, "digit-net", 28, batch_size=4, seed=0)["train"]
        orders.append(np.concatenate([np.asarray(x).ravel() for x, _ in train]))
    np.testing.assert_array_equal(orders[0], orders[1])
