"""Data-parallel fine-tuning with DistributedDataParallel, launched by ``torchrun``.

Twin: ``tlcourse.keras.distributed`` (``tf.distribute``). Run it as a script::

    torchrun --standalone --nproc_per_node=2 -m tlcourse.torch.distributed \\
        --init source.pt --out runs/ddp --epochs 2 --global-batch-size 64

Every process holds a replica of the model and trains on its own shard of each global
batch; DDP averages the gradients across processes after every backward pass, so all
replicas take the same optimiser step. On CPUs the processes talk over ``gloo``; on GPUs
over ``nccl``. Rank 0 alone writes the checkpoint and the log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm import tqdm

from tlcourse.checks import check_images_and_labels
from tlcourse.launcher import run_and_reap
from tlcourse.torch.checkpoints import load_checkpoint, save_checkpoint
from tlcourse.torch.models import to_tensor
from tlcourse.torch.optim import make_optimizer
from tlcourse.torch.training import evaluate

LOG_NAME = "log.json"
CHECKPOINT_NAME = "model.pt"


def gradient_bytes_per_step(model: nn.Module) -> int:
    """Bytes of gradient that data parallelism all-reduces per step: the trainable ones.

    Frozen parameters get no gradient, so DDP never sends them; freezing half of a
    network halves (or better) its communication.
    """
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def fit_distributed(
    model: nn.Module,
    X,
    y,
    *,
    num_epochs: int = 2,
    global_batch_size: int = 64,
    lr: float = 1e-3,
    accumulate: int = 1,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    quiet: bool = False,
) -> dict[str, list[float]]:
    """Fine-tune ``model`` data-parallel over the current process group (or alone).

    Each of the ``W`` processes (``W = 1`` without a process group) takes its shard of
    every global batch from a :class:`~torch.utils.data.DistributedSampler`, so that the
    ``W`` shards of step ``i`` together are exactly batch ``i`` of a one-process run with
    the same ``global_batch_size`` and seed. AdamW with a cosine schedule, as in
    :func:`tlcourse.torch.fit`. The match is exact (up to rounding) only when no layer
    depends on the batch it sees: BatchNorm in training mode normalises each process's
    shard with that shard's statistics, so freeze it (:func:`tlcourse.torch.freeze_batchnorm`)
    or, on GPUs, convert it to ``torch.nn.SyncBatchNorm``.

    Parameters
    ----------
    model : torch.nn.Module
        The model to train, identical on every process (same weights, same frozen parts),
        already on this process's device (its GPU, or the CPU).
    X, y : array-like
        Training images ``(N, H, W)`` and labels; each process passes the same arrays.
    num_epochs : int, default 2
    global_batch_size : int, default 64
        Images per optimiser step, summed over processes and accumulation steps; it must
        be divisible by ``world_size * accumulate``.
    lr : float, default 1e-3
    accumulate : int, default 1
        Micro-batches per optimiser step (gradient accumulation). Gradients of all but
        the last micro-batch stay local (``no_sync``), so communication happens once per
        step.
    seed : int, default 0
        Seeds the shuffling; every process must use the same one.
    out_dir : path-like, optional
        Rank 0 writes ``model.pt`` (model, optimiser and scheduler) after every epoch and
        ``log.json`` at the end.
    quiet : bool, default False
        Hide rank 0's progress bar (other ranks never show one).

    Returns
    -------
    dict
        Per-epoch ``loss`` (mean over the global data) and the run's settings.

    Raises
    ------
    ValueError
        If the batch size does not split evenly, or the model has nothing to train.
    """
    X, y = check_images_and_labels(X, y)
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    if num_epochs < 1 or accumulate < 1:
        raise ValueError("num_epochs and accumulate must be positive.")
    if global_batch_size % (world * accumulate):
        raise ValueError(
            f"global_batch_size={global_batch_size} must be divisible by world_size * "
            f"accumulate = {world} * {accumulate}."
        )
    micro = global_batch_size // (world * accumulate)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The model has no trainable parameters: everything is frozen.")

    device = next(model.parameters()).device  # the process's GPU, or the CPU
    ddp = model
    if world > 1:
        ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    data = TensorDataset(to_tensor(X), torch.as_tensor(y))
    # The sampler shuffles with (seed, epoch) and hands rank r every W-th index, padding
    # so that every rank gets the same number of batches.
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = DataLoader(data, batch_size=micro, sampler=sampler)
    steps_per_epoch = -(-len(loader) // accumulate)
    # weight_decay=0.01 is torch.optim.AdamW's default, which this loop has always used.
    optimizer, scheduler = make_optimizer(
        model, lr, num_epochs * steps_per_epoch, weight_decay=0.01, params=params
    )
    loss_fn = nn.CrossEntropyLoss()
    history: dict = {"loss": []}
    bar = tqdm(range(num_epochs), desc=f"DDP x{world}", unit="epoch", disable=quiet or rank > 0)
    start = time.perf_counter()
    for epoch in bar:
        sampler.set_epoch(epoch)  # forget this and every epoch repeats the same order
        ddp.train()
        total = torch.zeros(2, device=device)  # summed loss, images seen (this rank)
        batches = list(loader)
        for first in range(0, len(batches), accumulate):
            group = batches[first : first + accumulate]
            for i, (xb, yb) in enumerate(group):
                xb, yb = xb.to(device), yb.to(device)
                sync = i == len(group) - 1
                with ddp.no_sync() if (world > 1 and not sync) else contextlib.nullcontext():
                    loss = loss_fn(ddp(xb), yb)
                    (loss / len(group)).backward()
                total += torch.tensor([loss.item() * len(yb), len(yb)], device=device)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if world > 1:
            dist.all_reduce(total)
        history["loss"].append(float(total[0] / total[1]))
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
        if out_dir is not None and rank == 0:
            save_checkpoint(
                Path(out_dir) / CHECKPOINT_NAME, model, optimizer, scheduler, epoch=epoch + 1
            )
    history.update(
        world_size=world,
        global_batch_size=global_batch_size,
        per_process_batch_size=micro,
        accumulate=accumulate,
        seconds=time.perf_counter() - start,
        gradient_bytes_per_step=gradient_bytes_per_step(model),
    )
    return history


def _load_data(spec: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and test arrays for the script: ``mnist`` or ``synthetic:N`` (for tests)."""
    from tlcourse import data

    if spec == "mnist":
        X, y = data.load_mnist_subset()
        split = data.make_few_shot_split(y, None, seed=0)
        return X[split.train], y[split.train], X[split.test], y[split.test]
    if spec.startswith("synthetic:") and spec.split(":", 1)[1].isdigit():
        n = int(spec.split(":", 1)[1])
        X, y = data.make_synthetic_digits(n, seed=seed, use_cache=False)
        X_test, y_test = data.make_synthetic_digits(max(n // 4, 10), seed=seed + 1, use_cache=False)
        return X, y, X_test, y_test
    raise ValueError(f"Unknown --data {spec!r}; valid: 'mnist' or 'synthetic:N'.")


def _build_model(init: str, width: int, seed: int) -> nn.Module:
    from tlcourse.torch.models import build_digit_net
    from tlcourse.torch.training import set_seed

    set_seed(seed)  # the same seed on every rank: identical replicas to start from
    model = build_digit_net(width=width)
    if init != "none":
        if not Path(init).exists():
            raise FileNotFoundError(f"--init {init}: no such checkpoint.")
        load_checkpoint(init, model)
    return model


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tlcourse.torch.distributed",
        description="Fine-tune the digit network data-parallel (launch with torchrun).",
    )
    parser.add_argument("--init", required=True, help="checkpoint to start from, or 'none'")
    parser.add_argument("--width", type=int, default=16, help="width of build_digit_net")
    parser.add_argument("--data", default="mnist", help="'mnist' or 'synthetic:N'")
    parser.add_argument("--out", required=True, help="folder for rank 0's checkpoint and log")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--global-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--accumulate", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--freeze-until", default=None, help="freeze blocks up to this one")
    parser.add_argument(
        "--train-batchnorm",
        action="store_true",
        help="let BatchNorm use per-process batch statistics (breaks the 1-process match)",
    )
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``torchrun ... -m tlcourse.torch.distributed``; returns 0 on success."""
    args = _parse(argv)
    from tlcourse.torch.finetune import freeze, freeze_batchnorm

    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    # One GPU per process (torchrun sets LOCAL_RANK), talking over NCCL; else CPU and gloo.
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if distributed:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        rank = dist.get_rank() if distributed else 0
        X, y, X_test, y_test = _load_data(args.data, args.seed)
        model = _build_model(args.init, args.width, args.seed)
        if args.freeze_until:
            freeze(model, until=args.freeze_until)
        if not args.train_batchnorm:
            freeze_batchnorm(model)
        history = fit_distributed(
            model.to(device),
            X,
            y,
            num_epochs=args.epochs,
            global_batch_size=args.global_batch_size,
            lr=args.lr,
            accumulate=args.accumulate,
            seed=args.seed,
            out_dir=args.out,
            quiet=args.quiet,
        )
        if rank == 0:  # one writer: the log and the test score come from rank 0 only
            history["test_accuracy"] = evaluate(model.cpu(), X_test, y_test)["accuracy"]
            history["backend"] = dist.get_backend() if distributed else "none"
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / LOG_NAME).write_text(json.dumps(history, indent=1))
        if distributed:
            dist.barrier()  # no rank leaves before rank 0 has written
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


def run_alone(args: Sequence[str]) -> dict:
    """Run :func:`main` in this process, as one process without ``torchrun``; return its log.

    The one-process reference of a comparison needs no launcher: no process group is
    made (``fit_distributed`` then trains alone), and the run skips the seconds that
    starting a new Python and PyTorch costs. PyTorch uses one thread meanwhile, as every
    worker that :func:`launch` starts does (``OMP_NUM_THREADS=1``).

    Parameters
    ----------
    args : sequence of str
        Arguments of :func:`main`; must include ``--out``.

    Returns
    -------
    dict
        The run's ``log.json``.
    """
    args = list(args)
    log = _fresh_log_path(args, "run_alone")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("run_alone runs one process; this one is part of a process group.")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main(args)
    finally:
        torch.set_num_threads(threads)
    return json.loads(log.read_text())


def _fresh_log_path(args: list[str], caller: str) -> Path:
    """Where the run of ``args`` writes its log (``--out``), with any older log removed."""
    if "--out" not in args:
        raise ValueError(f"{caller} needs --out DIR among args: the log is read from there.")
    log = Path(args[args.index("--out") + 1]) / LOG_NAME
    log.unlink(missing_ok=True)
    return log


def launch(
    args: Sequence[str],
    *,
    nproc: int = 2,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> dict:
    """Run this module under ``torchrun`` with ``nproc`` processes; return rank 0's log.

    :func:`tlcourse.launcher.run_and_reap` runs it: every process of the launch is killed
    whatever happens (success, error, timeout, interrupt), so no worker outlives the call.

    Parameters
    ----------
    args : sequence of str
        Arguments of :func:`main`; must include ``--out``.
    nproc : int, default 2
        Processes on this machine (``torchrun --nproc_per_node``).
    timeout : float, default 600
        Seconds before the whole run is killed.
    env : dict, optional
        Extra environment variables.

    Returns
    -------
    dict
        The run's ``log.json``.

    Raises
    ------
    RuntimeError
        If the run fails; the message ends with its last output lines.
    TimeoutError
        If it runs longer than ``timeout``.
    """
    args = list(args)
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc!r}.")
    log = _fresh_log_path(args, "launch")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={nproc}", "-m", "tlcourse.torch.distributed", *args]
    returncode, output = run_and_reap(
        command, timeout=timeout, env={"OMP_NUM_THREADS": "1", **(env or {})}, name="torchrun"
    )
    if returncode != 0 or not log.exists():
        # torchrun prefixes each worker's lines with [rankN]:; name the workers' own errors
        # first, since torchrun's summary alone only says that a child failed.
        lines = output.splitlines()
        errors = dict.fromkeys(
            line.split(":", 1)[1].strip()
            for line in lines
            if re.match(r"\[rank\d+\]:\s*\w+(Error|Exception)\b", line)
        )
        tail = "\n".join(lines[-15:])
        raise RuntimeError(
            f"torchrun exited with {returncode}: {'; '.join(errors) or 'see below'}\n{tail}"
        )
    return json.loads(log.read_text())


if __name__ == "__main__":
    sys.exit(main())
