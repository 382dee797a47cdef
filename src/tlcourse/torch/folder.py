"""Fine-tuning on a folder of images, written as plain PyTorch (twin: ``tlcourse.keras.folder``).

Nothing here calls the rest of the package's training code: these are the loops the
chapter on your own images shows in full (``DataLoader``, ``model.train()`` /
``model.eval()``, ``torch.no_grad()``), and the ``tlcourse-finetune`` command runs them.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, models, transforms
from tqdm import tqdm

from tlcourse.image_folder import SPLITS, is_readable_image

# The mean and standard deviation that torchvision's ImageNet weights expect
# (ResNet18_Weights.DEFAULT.transforms() uses the same numbers).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transform(backbone: str, image_size: int) -> transforms.Compose:
    """The preprocessing a backbone expects: size, colour channels, scaling.

    Taught in :ref:`ch-your-own-images`.

    The course's digit net reads 28x28 grey images in [0, 1]; the ImageNet networks read
    RGB normalised with ImageNet's mean and standard deviation.
    """
    resize = transforms.Resize((image_size, image_size), antialias=True)
    if backbone == "digit-net":
        return transforms.Compose([transforms.Grayscale(1), resize, transforms.ToTensor()])
    return transforms.Compose(
        [resize, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


def make_loaders(
    folder: str | Path, transform, *, batch_size: int = 32, seed: int = 0
) -> dict[str, DataLoader]:
    """One ``DataLoader`` per split folder (``folder/train``, ``folder/val``, ``folder/test``).

    Taught in :ref:`ch-your-own-images`.

    Only the training loader shuffles, with its own seeded generator, so a run repeats.
    """
    loaders = {}
    for split in SPLITS:
        data = datasets.ImageFolder(
            Path(folder) / split, transform=transform, is_valid_file=is_readable_image
        )
        generator = torch.Generator().manual_seed(seed) if split == "train" else None
        loaders[split] = DataLoader(
            data, batch_size=batch_size, shuffle=split == "train", generator=generator
        )
    return loaders


def build_backbone_model(
    backbone: str, num_classes: int, *, weights: str = "course", seed: int = 0
) -> tuple[nn.Module, nn.Module]:
    """A pretrained backbone and a new linear head; returns ``(model, top_of_backbone)``.

    Taught in :ref:`ch-your-own-images`.

    ``model`` has two children, ``backbone`` and ``head``; ``top_of_backbone`` is the part
    unfrozen in the second phase (the digit net's ``block3``, ResNet-18's ``layer4``,
    MobileNetV2's last three blocks).

    Parameters
    ----------
    backbone : {"digit-net", "resnet18", "mobilenet_v2"}
    num_classes : int
    weights : {"course", "imagenet", "none"}
        ``"course"``: the course's source model (digit net only); ``"imagenet"``:
        torchvision's ``DEFAULT`` weights (downloaded on first use); ``"none"``: random.
    seed : int, default 0
        Seeds the new head's (and a random backbone's) initial weights.
    """
    torch.manual_seed(seed)
    if backbone == "digit-net":
        from tlcourse.torch.models import build_digit_net
        from tlcourse.torch.source import get_source_model

        source = get_source_model(quiet=True) if weights == "course" else build_digit_net()
        blocks = ("block1", "block2", "block3")
        body = nn.Sequential(OrderedDict((b, copy.deepcopy(getattr(source, b))) for b in blocks))
        top, width = body.block3, source.head.in_features
    elif backbone == "resnet18":
        chosen = models.ResNet18_Weights.DEFAULT if weights == "imagenet" else None
        body = models.resnet18(weights=chosen)
        width, body.fc = body.fc.in_features, nn.Identity()
        top = body.layer4
    elif backbone == "mobilenet_v2":
        net = models.mobilenet_v2(
            weights=models.MobileNet_V2_Weights.DEFAULT if weights == "imagenet" else None
        )
        body = nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        top, width = net.features[-3:], net.last_channel
    else:
        raise ValueError(f"unknown backbone {backbone!r}; use digit-net, resnet18 or mobilenet_v2.")
    torch.manual_seed(seed)  # the head starts the same whatever the backbone drew
    model = nn.Sequential(OrderedDict(backbone=body, head=nn.Linear(width, num_classes)))
    return model, top


def set_trainable(module: nn.Module, trainable: bool) -> None:
    """Freeze (``False``) or unfreeze (``True``) every parameter of ``module``.

    Taught in :ref:`ch-your-own-images`.
    """
    for p in module.parameters():
        p.requires_grad = trainable


def train_one_epoch(model, loader, optimizer, class_weights, device) -> float:
    """One pass over ``loader``; returns the mean training loss.

    Taught in :ref:`ch-your-own-images`.

    The backbone's BatchNorm layers stay in inference mode (their running statistics are
    the pretrained ones), as in the Keras guide's ``base(x, training=False)``. The loss is
    the class-weighted mean ``mean(w[y] * loss)``, the rule Keras' ``class_weight`` uses.
    """
    model.train()
    for m in model.backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    weights = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
    total, n = 0.0, 0
    for X, y in loader:
        X, y = X.to(device), y.to(device)
        optimizer.zero_grad()
        losses = nn.functional.cross_entropy(model(X), y, reduction="none")
        loss = (weights[y] * losses).mean()
        loss.backward()
        optimizer.step()
        total, n = total + loss.item() * len(y), n + len(y)
    return total / n


@torch.no_grad()
def predict_loader(model, loader, device) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted probabilities for every image of ``loader``, in its order.

    Taught in :ref:`ch-your-own-images`.
    """
    model.eval()
    ys, probs = [], []
    for X, y in loader:
        probs.append(torch.softmax(model(X.to(device)), dim=1).cpu())
        ys.append(y)
    return torch.cat(ys).numpy(), torch.cat(probs).numpy()


def fit_two_phase(
    model, top, loaders, *, epochs: int, lr: float, class_weights, device="cpu", seed: int = 0,
    quiet: bool = False,
) -> list[dict]:  # fmt: skip
    """Train the head, then the head and the top of the backbone; keep the best epoch.

    Taught in :ref:`ch-your-own-images`.

    Phase 1 trains the new head alone (``epochs`` epochs, Adam at ``lr``); phase 2 also
    unfreezes ``top`` at ``lr / 10`` for ``epochs`` more. After every epoch the model is
    scored on the validation loader, and the weights of the best epoch (highest
    validation accuracy, the earliest on a tie) are loaded back at the end. The training
    loader's generator (if it has one) is re-seeded with ``seed``, so that the order of
    the batches depends on ``seed`` alone.

    Returns
    -------
    list of dict
        One ``{"epoch", "phase", "loss", "val_accuracy"}`` per epoch.
    """
    torch.manual_seed(seed)
    shuffle = getattr(loaders["train"], "generator", None)
    if shuffle is not None:  # restart the shuffling: a run repeats whatever ran before it
        shuffle.manual_seed(seed)
    model.to(device)
    history, best, best_state = [], -1.0, None
    bar = tqdm(total=2 * epochs, desc="epochs", disable=quiet)
    for phase, rate in ((1, lr), (2, lr / 10)):
        set_trainable(model.backbone, False)
        set_trainable(top, phase == 2)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=rate)
        for _ in range(epochs):
            loss = train_one_epoch(model, loaders["train"], optimizer, class_weights, device)
            y, prob = predict_loader(model, loaders["val"], device)
            acc = float((prob.argmax(1) == y).mean())
            history.append(dict(epoch=len(history) + 1, phase=phase, loss=loss, val_accuracy=acc))
            if acc > best:
                best, best_state = acc, copy.deepcopy(model.state_dict())
            bar.update()
            bar.set_postfix(loss=f"{loss:.3f}", val_acc=f"{acc:.3f}")
    bar.close()
    model.load_state_dict(best_state)
    return history
