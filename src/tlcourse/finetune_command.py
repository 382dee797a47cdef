"""``tlcourse-finetune``: fine-tune a pretrained network on a folder of images.

Taught in :ref:`ch-your-own-images`. ::

    tlcourse-finetune ROOT --framework torch --backbone digit-net --weights course \\
        --epochs 8 --out runs/digits

``ROOT`` holds one folder per class (``ROOT/<class>/<image>``). The command splits the
files into train, validation and test (per class), trains the new head and then the top of
the backbone, keeps the epoch with the best validation accuracy, and writes into ``--out``:
the model, ``metrics.json`` (test accuracy, per-class accuracy, the confusion matrix, the
history, the files it skipped) and ``confusion_matrix.png``. Bad input gets a one-line
error and exit status 2; unreadable image files are skipped with a warning that counts
them.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from tlcourse.image_folder import (
    ImageFolderError,
    balanced_class_weights,
    describe_skipped,
    scan_image_folder,
    split_by_file,
    write_split_folders,
)

BACKBONES = ("digit-net", "resnet18", "mobilenet_v2")
DEFAULT_SIZE = {"digit-net": 28, "resnet18": 224, "mobilenet_v2": 224}
PROG = "tlcourse-finetune"


class CommandError(Exception):
    """Bad input for the command: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise CommandError(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command's options (``tlcourse-finetune --help`` prints them)."""
    p = _Parser(prog=PROG, description="Fine-tune a pretrained network on ROOT/<class>/<image>.")
    p.add_argument("root", type=Path, help="folder with one sub-folder of images per class")
    p.add_argument("--framework", choices=("torch", "keras"), default="torch")
    p.add_argument("--backbone", choices=BACKBONES, default="digit-net")
    p.add_argument(
        "--weights", choices=("course", "imagenet", "none"), default="course",
        help="course: the course's pretrained digit net (offline); imagenet: downloaded "
        "on first use; none: random weights (a mechanics check)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=8, help="epochs per phase (head, then top)")
    p.add_argument(
        "--lr", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1],
        help="phase 1 learning rate (phase 2: a tenth of it); given several, each is tried "
        "and the one with the best validation accuracy is kept",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=None, help="input side (default: backbone's)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", type=Path, required=True, help="folder for the model and metrics")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def check_options(args: argparse.Namespace) -> int:
    """Reject combinations that cannot work; return the input size to use."""
    if args.framework == "keras" and args.backbone == "resnet18":
        raise CommandError(
            "resnet18 is not in keras.applications; with --framework keras use "
            "--backbone digit-net or mobilenet_v2."
        )
    if args.weights == "course" and args.backbone != "digit-net":
        raise CommandError(
            f"--weights course exists for --backbone digit-net only; for {args.backbone} use "
            "--weights imagenet (online) or none."
        )
    if args.weights == "imagenet" and args.backbone == "digit-net":
        raise CommandError("digit-net has no ImageNet weights; use --weights course or none.")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
    if not all(lr > 0 for lr in args.lr):
        raise CommandError(f"--lr must be positive; got {args.lr}.")
    size = args.image_size or DEFAULT_SIZE[args.backbone]
    if args.backbone == "digit-net" and size != 28:
        raise CommandError("digit-net reads 28x28 images; drop --image-size or give 28.")
    if size < 32 and args.backbone != "digit-net":
        raise CommandError(f"{args.backbone} needs --image-size of at least 32; got {size}.")
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"--out {args.out} is a file; give a folder.")
    return size


def _download_error(args, error: Exception) -> CommandError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CommandError(
        f"could not get the ImageNet weights for {args.backbone} ({first}); they are "
        "downloaded on first use, so run once online, or use --weights none offline."
    )


def train_torch(args, lr: float, size: int, data: Path, class_weights) -> tuple:
    import torch

    from tlcourse.torch import folder

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda: PyTorch sees no GPU; use --device auto or cpu.")
    loaders = folder.make_loaders(
        data, folder.build_transform(args.backbone, size), batch_size=args.batch_size,
        seed=args.seed,
    )  # fmt: skip
    classes = loaders["train"].dataset.classes
    try:
        model, top = folder.build_backbone_model(
            args.backbone, len(classes), weights=args.weights, seed=args.seed
        )
    except Exception as error:  # noqa: BLE001 (a failed download has many types)
        if args.weights != "imagenet":
            raise
        raise _download_error(args, error) from None
    history = folder.fit_two_phase(
        model, top, loaders, epochs=args.epochs, lr=lr, class_weights=class_weights,
        device=device, seed=args.seed, quiet=args.quiet,
    )  # fmt: skip
    y, prob = folder.predict_loader(model, loaders["test"], device)

    def save(out: Path) -> Path:
        torch.save(model.state_dict(), out / "model.pt")
        return out / "model.pt"

    return history, y, prob, save, device


def train_keras(args, lr: float, size: int, data: Path, class_weights) -> tuple:
    import tensorflow as tf

    from tlcourse.keras import folder

    gpus = tf.config.list_logical_devices("GPU")
    if args.device == "cuda" and not gpus:
        raise CommandError("--device cuda: TensorFlow sees no GPU; use --device auto or cpu.")
    device = "/GPU:0" if gpus and args.device != "cpu" else "/CPU:0"
    datasets = folder.make_datasets(
        data, args.backbone, size, batch_size=args.batch_size, seed=args.seed
    )
    num_classes = len(class_weights)
    with tf.device(device):
        try:
            model, top = folder.build_backbone_model(
                args.backbone, num_classes, weights=args.weights, image_size=size,
                seed=args.seed,
            )  # fmt: skip
        except Exception as error:  # noqa: BLE001
            if args.weights != "imagenet":
                raise
            raise _download_error(args, error) from None
        history = folder.fit_two_phase(
            model, top, datasets, epochs=args.epochs, lr=lr, class_weights=class_weights,
            checkpoint=args.out / "best.weights.h5", seed=args.seed, quiet=args.quiet,
        )  # fmt: skip
        y, prob = folder.predict_dataset(model, datasets["test"])

    def save(out: Path) -> Path:
        model.save(out / "model.keras")
        return out / "model.keras"

    return history, y, prob, save, device


def confusion(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` (rows: true class)."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y, pred), 1)
    return matrix


def save_confusion_png(matrix: np.ndarray, classes, path: Path) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    from tlcourse.viz import Figure

    fig = Figure(figsize=(1.0 + 0.5 * len(classes), 0.8 + 0.5 * len(classes)))
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, colorbar=False)
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_title("test images")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run(args: argparse.Namespace) -> dict:
    """Run the command on parsed options; return what it writes to ``metrics.json``."""
    size = check_options(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = scan_image_folder(args.root)
    for w in caught:
        print(f"{PROG}: warning: {w.message}", file=sys.stderr)
    split = split_by_file(
        scan.labels, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        seed=args.seed,
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    data = write_split_folders(scan, split, args.out / "data")
    class_weights = balanced_class_weights(scan.labels[split["train"]], len(scan.classes))
    train = train_torch if args.framework == "torch" else train_keras
    # Several learning rates: each is trained; the best validation accuracy is kept
    # (the earlier rate on a tie). The test images are only scored, never compared.
    tried, kept = {}, None
    for lr in args.lr:
        history, y, prob, save, device = train(args, lr, size, data, class_weights)
        tried[lr] = max(h["val_accuracy"] for h in history)
        if kept is None or tried[lr] > tried[kept[0]]:
            kept = (lr, history, y, prob, save(args.out))
    lr, history, y, prob, model_path = kept
    pred = prob.argmax(1)
    matrix = confusion(y, pred, len(scan.classes))
    per_class = (np.diag(matrix) / matrix.sum(1)).tolist()
    best = max(history, key=lambda h: (h["val_accuracy"], -h["epoch"]))
    metrics = {
        "framework": args.framework, "backbone": args.backbone, "weights": args.weights,
        "device": str(device), "image_size": size, "classes": list(scan.classes),
        "images": {name: int(len(idx)) for name, idx in split.items()},
        "images_per_class": scan.counts(), "class_weights": class_weights.tolist(),
        "skipped": describe_skipped(scan), "best_epoch": best["epoch"],
        "lr": lr, "val_accuracy_by_lr": {str(k): v for k, v in tried.items()},
        "val_accuracy": best["val_accuracy"], "test_accuracy": float((pred == y).mean()),
        "test_accuracy_per_class": dict(zip(scan.classes, per_class, strict=True)),
        "confusion_matrix": matrix.tolist(), "history": history, "model": str(model_path),
    }  # fmt: skip
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    save_confusion_png(matrix, scan.classes, args.out / "confusion_matrix.png")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tlcourse-finetune``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        m = run(args)
    except (CommandError, ImageFolderError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print(
        f"{PROG}: {m['framework']} {m['backbone']}, lr {m['lr']:g}, best epoch "
        f"{m['best_epoch']} of {len(m['history'])}: validation "
        f"{100 * m['val_accuracy']:.1f}%, test {100 * m['test_accuracy']:.1f}% on "
        f"{m['images']['test']} images; model {m['model']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
