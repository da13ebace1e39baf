"""Run checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the global weights, the last finished round, the server strategy's
state (e.g. FedAdam moments), the server's RNG state and the scenario digest. It is
written atomically (temp file + rename) after every round and read back with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only, never
arbitrary pickled objects. Client-side randomness needs no state: it is derived from
(seed, round, client).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fedrobust.errors import FedrobustError
from fedrobust.rundir import RunDir

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """The state of a run after ``round`` finished rounds.

    Parameters
    ----------
    round : int
        Last finished round.
    digest : str
        :meth:`Scenario.resume_digest` of the scenario that produced it.
    model : dict[str, torch.Tensor]
        Global model state dict.
    strategy : dict[str, Any]
        Server strategy state (tensors and plain values).
    extra : dict[str, Any]
        Any other state of the round loop (e.g. early-stopping bookkeeping).
    torch_rng : torch.Tensor
        The server's torch RNG state.
    """

    round: int
    digest: str
    model: dict[str, torch.Tensor]
    strategy: dict[str, Any]
    extra: dict[str, Any]
    torch_rng: torch.Tensor


def save_checkpoint(run_dir: Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``run_dir/checkpoint.pt`` atomically."""
    path = RunDir(run_dir).checkpoint
    payload = {
        "format": FORMAT_VERSION,
        "round": ckpt.round,
        "digest": ckpt.digest,
        "model": ckpt.model,
        "strategy": ckpt.strategy,
        "extra": ckpt.extra,
        "torch_rng": ckpt.torch_rng,
    }
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".checkpoint.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(run_dir: Path, digest: str | None = None) -> Checkpoint:
    """Read ``run_dir/checkpoint.pt`` without unpickling arbitrary objects.

    With ``digest`` (the scenario's :meth:`Scenario.resume_digest`), a checkpoint written
    by another scenario is refused.
    """
    path = RunDir(run_dir).checkpoint
    if not path.is_file():
        raise FedrobustError(str(path), "no checkpoint to resume from")
    try:
        raw = torch.load(path, weights_only=True)
    except Exception as exc:  # corrupt file, foreign pickle
        raise FedrobustError(str(path), f"unreadable checkpoint ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_VERSION:
        raise FedrobustError(str(path), "not a fedrobust checkpoint (or another format version)")
    if digest is not None and raw["digest"] != digest:
        raise FedrobustError(
            str(path),
            "was written by a different scenario; only train.rounds may change on --resume",
        )
    return Checkpoint(
        round=int(raw["round"]),
        digest=str(raw["digest"]),
        model=raw["model"],
        strategy=raw["strategy"],
        extra=raw["extra"],
        torch_rng=raw["torch_rng"],
    )
