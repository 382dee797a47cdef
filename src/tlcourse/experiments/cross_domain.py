"""Train on one domain, test on every domain (chapter :ref:`ch-what-is-transfer-learning`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np
from tqdm import tqdm

from tlcourse.data import Dataset
from tlcourse.experiments.few_shot import reuse_model


def run_cross_domain(
    backend: ModuleType,
    train_domains: Mapping[str, Dataset],
    test_domains: Mapping[str, Dataset],
    seeds: Sequence[int],
    *,
    num_epochs: int | Mapping[str, int] = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    width: int = 16,
    trained: Mapping[tuple[int, str], object] | None = None,
    quiet: bool = False,
) -> np.ndarray:
    """Train one digit net per (seed, training domain); score it on every test domain.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    train_domains, test_domains : mapping of str to (X, y)
        Named data sets to train on and to test on.
    seeds : sequence of int
        One run per seed and training domain.
    num_epochs : int or mapping of str to int, default 3
        Epochs, for all training domains or per training domain.
    batch_size, lr, width
        Passed to ``build_digit_net`` (``width``) and ``fit``.
    trained : mapping of (seed, training domain) to model, optional
        Runs already made exactly as this loop makes them (seeded with ``seed``, a fresh
        ``build_digit_net(width=width)``, then ``fit`` with these arguments): they are
        scored, not trained again. A chapter that has just shown one such run reuses it.
    quiet : bool, default False
        Hide the progress bar.

    Returns
    -------
    np.ndarray
        Accuracies of shape ``(len(seeds), len(train_domains), len(test_domains))``.

    Raises
    ------
    ValueError
        If ``seeds`` or a domain mapping is empty, ``num_epochs`` lacks a domain, or
        ``trained`` names a run this loop does not make.
    """
    if not seeds or not train_domains or not test_domains:
        raise ValueError("seeds, train_domains and test_domains must all be non-empty.")
    trained = dict(trained or {})
    unknown = [run for run in trained if run[0] not in seeds or run[1] not in train_domains]
    if unknown:
        raise ValueError(f"trained names runs this loop does not make: {unknown}.")
    if isinstance(num_epochs, Mapping):
        missing = set(train_domains) - set(num_epochs)
        if missing:
            raise ValueError(f"num_epochs has no entry for training domains {sorted(missing)}.")
        epochs = dict(num_epochs)
    else:
        epochs = dict.fromkeys(train_domains, num_epochs)
    acc = np.zeros((len(seeds), len(train_domains), len(test_domains)))
    runs = [(s, t) for s in range(len(seeds)) for t in range(len(train_domains))]
    names = list(train_domains)
    kept: dict = {}  # one model per training domain, reset for every seed (see reuse_model)
    for s, t in tqdm(runs, desc=f"{backend.__name__} runs", disable=quiet):
        name = names[t]
        model = trained.get((seeds[s], name))
        if model is None:
            backend.set_seed(int(seeds[s]))
            model = reuse_model(backend, kept, name, backend.build_digit_net(width=width))
            X, y = train_domains[name]
            backend.fit(
                model,
                X,
                y,
                num_epochs=epochs[name],
                batch_size=batch_size,
                lr=lr,
                seed=int(seeds[s]),
                quiet=True,
            )
        for j, (X_test, y_test) in enumerate(test_domains.values()):
            acc[s, t, j] = backend.evaluate(model, X_test, y_test)["accuracy"]
    return acc
