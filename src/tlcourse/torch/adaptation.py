"""Unsupervised domain adaptation in PyTorch (twin: ``tlcourse.keras.adaptation``).

:func:`adapt` trains a classifier on labelled source images and unlabelled target images.
Every step draws one source batch and one target batch, passes both through the network
together and adds to the source cross-entropy one of four alignment losses:

- ``"coral"``: Deep CORAL, the distance between the two batches' feature covariances;
- ``"mmd"``: the multi-kernel maximum mean discrepancy between the two batches' features;
- ``"dann"``: a domain classifier behind a gradient-reversal layer;
- ``"self_training"``: cross-entropy on the target images the model itself labels with
  confidence at least ``threshold`` (pseudo-labels).

``"source_only"`` trains on the source batches alone (the baseline).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from tlcourse.adaptation import EXTRA_LOGS, batch_indices, check_adapt_inputs, dann_lambda
from tlcourse.checks import check_images_and_labels, check_positive_ints
from tlcourse.torch.adversarial import GradientReversal
from tlcourse.torch.models import device_of, num_outputs, to_tensor
from tlcourse.torch.optim import make_optimizer


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL loss (Sun & Saenko, 2016): ``||C_s - C_t||_F^2 / (4 d^2)``.

    Taught in :ref:`ch-domain-adaptation`.

    ``C_s`` and ``C_t`` are the unbiased covariance matrices of the two batches of
    ``d``-dimensional features.

    Parameters
    ----------
    source, target : torch.Tensor
        Features ``(N_s, d)`` and ``(N_t, d)``, each with at least 2 rows.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    _check_pair(source, target)
    d = source.shape[1]
    diff = torch.cov(source.T) - torch.cov(target.T)
    return (diff**2).sum() / (4 * d * d)


def mmd_loss(
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    bandwidths=None,
    multipliers=(0.25, 0.5, 1.0, 2.0, 4.0),
) -> torch.Tensor:
    """Squared maximum mean discrepancy with a sum of Gaussian kernels (DAN; Long et al., 2015).

    Taught in :ref:`ch-domain-adaptation`.

    ``k(a, b) = sum_i exp(-||a - b||^2 / h_i)`` and the (biased) estimate is
    ``mean k(s, s') + mean k(t, t') - 2 mean k(s, t)`` over all pairs, diagonals included.

    Parameters
    ----------
    source, target : torch.Tensor
        Features ``(N_s, d)`` and ``(N_t, d)``.
    bandwidths : sequence of float, optional
        The ``h_i``. By default they are ``multipliers`` times the mean squared distance
        between all pairs of the pooled batch (a constant: no gradient flows through it).
    multipliers : sequence of float
        Used only when ``bandwidths`` is None.

    Returns
    -------
    torch.Tensor
        A scalar, 0 when the two batches are identical.
    """
    _check_pair(source, target)
    pooled = torch.cat([source, target])
    sq = torch.cdist(pooled, pooled) ** 2
    if bandwidths is None:
        n = len(pooled)
        base = sq.detach().sum() / (n * n - n)
        bandwidths = [base * m for m in multipliers]
    kernel = sum(torch.exp(-sq / h) for h in bandwidths)
    n_s = len(source)
    return kernel[:n_s, :n_s].mean() + kernel[n_s:, n_s:].mean() - 2 * kernel[:n_s, n_s:].mean()


def _check_pair(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(
            "Expected two feature batches (N, d) of equal width, got "
            f"{tuple(source.shape)} and {tuple(target.shape)}."
        )
    if len(source) < 2 or len(target) < 2:
        raise ValueError("Each feature batch needs at least 2 rows.")


def build_domain_head(in_features: int, hidden: int = 64) -> nn.Sequential:
    """DANN's domain classifier: gradient reversal, then a small MLP to one logit.

    Taught in :ref:`ch-domain-adaptation`.

    The logit says "target" when positive. Set ``head.grl.lambda_`` to change the reversal
    strength during training.
    """
    check_positive_ints(in_features=in_features, hidden=hidden)
    return nn.Sequential(
        GradientReversal(0.0),
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


def _split(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    children = list(model.children())
    if len(children) < 2:
        raise ValueError("adapt needs a model whose last child is the classifier head.")
    return nn.Sequential(*children[:-1]), children[-1]


def adapt(
    model: nn.Module,
    X_source,
    y_source,
    X_target,
    *,
    method: str = "dann",
    num_steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight: float | None = None,
    threshold: float = 0.9,
    seed: int = 0,
    quiet: bool = False,
    desc: str | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place on labelled source and unlabelled target images.

    Taught in :ref:`ch-domain-adaptation`.

    The features are the output of everything but the model's last child (for the digit
    net, ``block3``'s 64 pooled channels); the last child is the classifier head.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(N, C, H, W)`` images to logits; usually a copy of the pretrained source model.
    X_source, y_source : array-like
        Labelled source images and labels.
    X_target : array-like
        Target images; no labels are used.
    method : str, default "dann"
        One of :data:`tlcourse.adaptation.METHODS`.
    num_steps, batch_size, lr
        Steps of AdamW (learning rate decayed to 0 with a cosine); each step sees
        ``batch_size`` source and ``batch_size`` target images.
    weight : float, optional
        Weight of the added loss; default :data:`tlcourse.adaptation.DEFAULT_WEIGHTS`.
        For DANN it scales the reversed gradient, which also follows
        :func:`tlcourse.adaptation.dann_lambda`.
    threshold : float, default 0.9
        Confidence a target prediction needs to count as a pseudo-label (self-training).
    seed : int, default 0
        Seeds the batch order (and DANN's domain head).
    quiet : bool, default False
        Hide the progress bar.
    desc : str, optional
        Label of the progress bar (default: the method).

    Returns
    -------
    dict
        Per step: ``loss`` (source cross-entropy), ``align`` (the added loss before
        weighting; 0 for ``source_only``) and, for self-training, ``pseudo_fraction`` (the
        share of confident target predictions) or, for DANN, ``domain_accuracy`` (the
        domain head's accuracy on the step's source and target batches).

    Raises
    ------
    ValueError
        An unknown method, bad images or labels, source and target images of different
        shapes, a threshold outside [0, 1] or a negative weight.
    """
    X_source, y_source, X_target, weight = check_adapt_inputs(
        X_source,
        y_source,
        X_target,
        num_classes=num_outputs(model),
        method=method,
        num_steps=num_steps,
        batch_size=batch_size,
        threshold=threshold,
        weight=weight,
    )
    features, head = _split(model)
    device = device_of(model)
    X_s, X_t = to_tensor(X_source, device), to_tensor(X_target, device)
    y_s = torch.as_tensor(y_source, device=device)
    params = list(model.parameters())
    domain_head = None
    if method == "dann":
        torch.manual_seed(seed)
        with torch.no_grad():
            width = features(X_s[:2]).shape[1]
        domain_head = build_domain_head(width).to(device)
        params += list(domain_head.parameters())
    optimizer, scheduler = make_optimizer(model, lr, num_steps, params=params)
    rng = np.random.default_rng(seed)
    source_batches = batch_indices(rng, len(X_s), batch_size)
    target_batches = batch_indices(rng, len(X_t), batch_size)
    history: dict[str, list[float]] = {"loss": [], "align": []}
    model.train()
    bar = tqdm(range(num_steps), desc=desc or method, disable=quiet, mininterval=1.0)
    for step in bar:
        i_s = torch.as_tensor(next(source_batches), device=device)
        if method == "source_only":
            task = F.cross_entropy(model(X_s[i_s]), y_s[i_s])
            align = torch.zeros(())
        else:
            i_t = torch.as_tensor(next(target_batches), device=device)
            f = features(torch.cat([X_s[i_s], X_t[i_t]]))
            f_s, f_t = f[: len(i_s)], f[len(i_s) :]
            logits = head(f)
            task = F.cross_entropy(logits[: len(i_s)], y_s[i_s])
            align = _alignment(method, f, f_s, f_t, logits[len(i_s) :], domain_head, threshold)
            if method in EXTRA_LOGS:
                align, extra = align
                history.setdefault(EXTRA_LOGS[method], []).append(extra)
            if method == "dann":
                domain_head[0].lambda_ = weight * dann_lambda(step / max(num_steps - 1, 1))
        scale = 1.0 if method == "dann" else weight
        loss = task + scale * align
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        history["loss"].append(task.item())
        history["align"].append(align.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{task.item():.3f}", align=f"{align.item():.3f}")
    model.eval()
    return history


def _alignment(method, f, f_s, f_t, logits_t, domain_head, threshold):
    if method == "coral":
        return coral_loss(f_s, f_t)
    if method == "mmd":
        return mmd_loss(f_s, f_t)
    if method == "dann":
        domains = torch.cat([torch.zeros(len(f_s)), torch.ones(len(f_t))]).to(f.device)
        domain_logits = domain_head(f).squeeze(1)
        accuracy = ((domain_logits > 0).float() == domains).float().mean().item()
        return F.binary_cross_entropy_with_logits(domain_logits, domains), accuracy
    # self_training: confident target predictions become labels (no gradient through them).
    probs = logits_t.detach().softmax(1)
    confidence, pseudo = probs.max(1)
    mask = (confidence >= threshold).float()
    ce = F.cross_entropy(logits_t, pseudo, reduction="none")
    return (mask * ce).mean(), mask.mean().item()


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, X_target, *, batch_size: int = 500) -> nn.Module:
    """AdaBN (Li et al., 2018): re-estimate every BatchNorm layer's statistics on target images.

    Taught in :ref:`ch-domain-adaptation`.

    The running means and variances are replaced by averages over ``X_target`` (each
    batch's statistics weighted by its size); no weight changes. Returns ``model``, in
    evaluation mode.
    """
    X_target, _ = check_images_and_labels(X_target)
    X = to_tensor(X_target, device_of(model))
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("The model has no BatchNorm layers to adapt.")
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
    model.train()
    for start in range(0, len(X), batch_size):
        batch = X[start : start + batch_size]
        for m in norms:  # a running average in which each image weighs the same
            m.momentum = len(batch) / (start + len(batch))
        model(batch)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()
