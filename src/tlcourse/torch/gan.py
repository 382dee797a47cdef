"""A small class-conditional DCGAN for 28x28 digits, in PyTorch (twin: ``tlcourse.keras.gan``).

The generator maps a latent vector and a class label to an image in ``[0, 1]``; the
discriminator maps an image and a label to one logit (real or generated). Both are given
the label as a one-hot code, as in the conditional GAN of Mirza & Osindero (2014): the
generator reads ``[z, onehot(y)]``; the discriminator adds a learned map per class to its
first feature maps, which is what ten one-hot image channels would amount to. Both are
DCGANs (Radford et al., 2016): strided convolutions, BatchNorm in the generator, LeakyReLU
in the discriminator.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tlcourse.checks import check_images_and_labels, check_positive_ints
from tlcourse.torch.models import device_of, to_tensor


class Generator(nn.Module):
    """``G(z, y)``: latent vectors ``(N, latent_dim)`` and labels ``(N,)`` to images.

    The output has shape ``(N, 1, 28, 28)``, in ``[0, 1]`` (sigmoid).
    """

    def __init__(self, latent_dim: int = 32, num_classes: int = 10, width: int = 16):
        super().__init__()
        check_positive_ints(latent_dim=latent_dim, num_classes=num_classes, width=width)
        self.latent_dim, self.num_classes, self.width = latent_dim, num_classes, width
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 2 * width * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * width * 7 * 7),
            nn.ReLU(),
        )
        self.up = nn.Sequential(
            OrderedDict(
                up1=nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
                bn1=nn.BatchNorm2d(width),
                relu1=nn.ReLU(),
                up2=nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
                out=nn.Sigmoid(),
            )
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(labels, self.num_classes).to(z.dtype)
        h = self.project(torch.cat([z, onehot], dim=1))  # 7x7 maps, then 14x14, then 28x28
        return self.up(h.view(-1, 2 * self.width, 7, 7))


class Discriminator(nn.Module):
    """``D(x, y)``: images ``(N, 1, 28, 28)`` and labels ``(N,)`` to logits ``(N,)``.

    The label enters as a learned map per class added to the first convolution's output.
    That is what concatenating ten constant one-hot channels to the image would do (a
    convolution of a constant channel is a constant map, up to the zero padding at the
    border), at a tenth of the first layer's cost.
    """

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        check_positive_ints(num_classes=num_classes, width=width)
        self.num_classes, self.width = num_classes, width
        self.conv1 = nn.Conv2d(1, width, 4, stride=2, padding=1)
        self.label_maps = nn.Embedding(num_classes, width * 14 * 14)  # N(0, 1) at first
        self.features = nn.Sequential(
            OrderedDict(
                act1=nn.LeakyReLU(0.2),
                conv2=nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
                act2=nn.LeakyReLU(0.2),
                flatten=nn.Flatten(),
            )
        )
        self.linear = nn.Linear(2 * width * 7 * 7, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.label_maps(labels).view(-1, self.width, 14, 14)
        return self.linear(self.features(h)).squeeze(1)


def build_generator(latent_dim: int = 32, num_classes: int = 10, width: int = 16) -> Generator:
    """The conditional DCGAN generator; see :class:`Generator`.

    Taught in :ref:`ch-gan-augmentation`.
    """
    return Generator(latent_dim, num_classes, width)


def build_discriminator(num_classes: int = 10, width: int = 16) -> Discriminator:
    """The conditional DCGAN discriminator; see ``Discriminator``.

    Taught in :ref:`ch-gan-augmentation`.
    """
    return Discriminator(num_classes, width)


@torch.no_grad()
def generate(generator: Generator, labels, *, seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Images for the given labels, from latent vectors drawn with ``seed``, in eval mode.

    Taught in :ref:`ch-gan-augmentation`.

    Parameters
    ----------
    generator : Generator
    labels : array-like of int
        One image per label.
    seed : int, default 0

    Returns
    -------
    np.ndarray
        float32 images ``(N, 28, 28)`` in ``[0, 1]``.
    """
    labels = torch.as_tensor(np.asarray(labels, np.int64))
    if labels.ndim != 1 or (
        labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < generator.num_classes
    ):
        raise ValueError(f"labels must be a 1-D array of ints in [0, {generator.num_classes}).")
    z = torch.randn(
        len(labels), generator.latent_dim, generator=torch.Generator().manual_seed(seed)
    )
    device = device_of(generator)
    was_training = generator.training
    generator.eval()
    try:
        out = [
            generator(z[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(labels), batch_size)
        ]
    finally:
        generator.train(was_training)
    return torch.cat(out).squeeze(1).numpy() if out else np.zeros((0, 28, 28), np.float32)


def train_gan(
    generator: Generator,
    discriminator: Discriminator,
    X,
    y,
    *,
    num_epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.0, 0.9),
    seed: int = 0,
    sample_epochs=(),
    sample_labels=None,
    quiet: bool = False,
    desc: str = "GAN",
) -> dict:
    """Train a conditional GAN with the non-saturating loss and Adam.

    Taught in :ref:`ch-gan-augmentation`.

    Each step updates the discriminator on a batch of real images and as many generated
    ones (labels drawn like the real batch's), then the generator, whose loss is
    ``-log D(G(z, y), y)`` (the non-saturating form of Goodfellow et al., 2014).

    Every epoch drops its last incomplete batch, so that every step sees ``batch_size``
    images (a tiny last batch gives noisy BatchNorm statistics and a lopsided update);
    with fewer than ``batch_size`` images, each epoch is one step on all of them. An
    epoch is thus ``max(1, len(X) // batch_size)`` steps.

    Parameters
    ----------
    generator, discriminator
    X, y : array-like
        Real images ``(N, 28, 28)`` in ``[0, 1]`` and their labels.
    num_epochs, batch_size, lr
    betas : (float, float), default (0.0, 0.9)
        Adam's momentum coefficients for both networks. DCGAN used ``(0.5, 0.999)`` with
        ``lr=2e-4``; the course trains for a few hundred steps only, where a larger rate
        with no first-moment momentum learns much faster and stays stable.
    seed : int
        Seeds the shuffling and the latent draws.
    sample_epochs : iterable of int
        After these epochs (1-based), generate ``sample_labels`` with a fixed latent seed
        and keep the images (to watch training progress).
    sample_labels : array-like of int, optional
        Default: one of each class.
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    dict
        ``d_loss`` and ``g_loss`` per epoch (means over steps), ``d_real`` and ``d_fake``
        (mean discriminator probability on real and generated images), and ``samples``:
        ``{epoch: images}``.
    """
    X, y = check_images_and_labels(X, y, num_classes=generator.num_classes)
    if num_epochs < 1 or batch_size < 1:
        raise ValueError("num_epochs and batch_size must be positive.")
    device = device_of(generator)
    X_t, y_t = to_tensor(X, device), torch.as_tensor(y, device=device)
    size = min(batch_size, len(X_t))  # drop the last incomplete batch (see above)
    steps = len(X_t) // size
    sample_epochs = set(sample_epochs)
    if sample_labels is None:
        sample_labels = np.arange(generator.num_classes)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=tuple(betas))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=tuple(betas))
    bce = nn.functional.binary_cross_entropy_with_logits
    rng = torch.Generator().manual_seed(seed)
    history: dict = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": [], "samples": {}}
    bar = tqdm(range(1, num_epochs + 1), desc=desc, disable=quiet, unit="epoch", mininterval=1.0)
    for epoch in bar:
        generator.train()
        discriminator.train()
        order = torch.randperm(len(X_t), generator=rng)
        sums = np.zeros(4)
        for step in range(steps):
            idx = order[step * size : (step + 1) * size].to(device)
            real, labels = X_t[idx], y_t[idx]
            z = torch.randn(len(idx), generator.latent_dim, generator=rng).to(device)
            fake = generator(z, labels)
            d_real = discriminator(real, labels)
            d_fake = discriminator(fake.detach(), labels)
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_score = discriminator(fake, labels)
            g_loss = bce(g_score, torch.ones_like(g_score))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            sums += np.array(
                [
                    d_loss.item(),
                    g_loss.item(),
                    torch.sigmoid(d_real).mean().item(),
                    torch.sigmoid(d_fake).mean().item(),
                ]
            )
        for key, value in zip(("d_loss", "g_loss", "d_real", "d_fake"), sums / steps, strict=True):
            history[key].append(float(value))
        bar.set_postfix(
            d_loss=f"{history['d_loss'][-1]:.3f}", g_loss=f"{history['g_loss'][-1]:.3f}"
        )
        if epoch in sample_epochs:
            history["samples"][epoch] = generate(generator, sample_labels, seed=12345)
    return history


def generate_labelled(generator: Generator, n_per_class: int, *, seed: int = 0):
    """``n_per_class`` generated images of every class, with their labels, for augmentation.

    Taught in :ref:`ch-gan-augmentation`.

    Returns
    -------
    (np.ndarray, np.ndarray)
        Images ``(num_classes * n_per_class, 28, 28)`` and int64 labels, class by class.
    """
    check_positive_ints(n_per_class=n_per_class)
    labels = np.repeat(np.arange(generator.num_classes), n_per_class)
    return generate(generator, labels, seed=seed), labels
