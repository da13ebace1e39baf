"""Run checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the global weights, the last finished round, the server strategy's
state (e.g. FedAdam moments), the server's RNG state and the scenario digest. It is
written atomically (temp file + rename) after every round and read back with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only, never
arbitrary pickled objects. Client-side randomness needs no state: it is derived from
(seed, round, client). The final model (``model.pt``, :func:`save_model`) is written the
same way. A fresh run removes an older run's checkpoint before its first round
(``fedrobust.rundir.discard_checkpoint``), so ``--resume`` never continues someone else's
state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fedrobust.errors import FedrobustError
from fedrobust.rundir import RunDir, write_atomic

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


def save_atomic(payload: Any, path: Path) -> Path:
    """``torch.save`` ``payload`` to ``path`` so that a crash leaves the old file or the new.

    Writes a temporary file beside ``path``, flushes it to disk, renames it over ``path``
    and flushes the directory, so the rename itself survives a power loss.
    """
    return write_atomic(path, lambda handle: torch.save(payload, handle))


def save_checkpoint(run_dir: Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``run_dir/checkpoint.pt`` atomically."""
    payload = {
        "format": FORMAT_VERSION,
        "round": ckpt.round,
        "digest": ckpt.digest,
        "model": ckpt.model,
        "strategy": ckpt.strategy,
        "extra": ckpt.extra,
        "torch_rng": ckpt.torch_rng,
    }
    return save_atomic(payload, RunDir(run_dir).checkpoint)


def save_model(run_dir: Path, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write the final global model's state dict to ``run_dir/model.pt`` atomically."""
    return save_atomic(state_dict, RunDir(run_dir).model)


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
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FedrobustError(str(path), f"unreadable checkpoint ({first})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_VERSION:
        raise FedrobustError(str(path), "not a fedrobust checkpoint (or another format version)")
    try:
        ckpt = Checkpoint(
            round=raw["round"],
            digest=raw["digest"],
            model=raw["model"],
            strategy=raw["strategy"],
            extra=raw["extra"],
            torch_rng=raw["torch_rng"],
        )
    except KeyError as exc:
        raise FedrobustError(str(path), f"malformed checkpoint (no {exc.args[0]!r})") from None
    problem = _malformed(ckpt)
    if problem:
        raise FedrobustError(str(path), f"malformed checkpoint ({problem})")
    if digest is not None and ckpt.digest != digest:
        raise FedrobustError(
            str(path),
            "was written by a different scenario; only train.rounds may change on --resume",
        )
    return ckpt


def _malformed(ckpt: Checkpoint) -> str | None:
    """What is wrong with the fields of a loaded checkpoint, or None."""
    if type(ckpt.round) is not int or ckpt.round < 0:
        return f"round is {ckpt.round!r}"
    if not isinstance(ckpt.digest, str):
        return "digest is not a string"
    if not isinstance(ckpt.model, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ckpt.model.items()
    ):
        return "model is not a state dict"
    if not isinstance(ckpt.strategy, dict) or not isinstance(ckpt.extra, dict):
        return "strategy or extra is not a dict"
    if not isinstance(ckpt.torch_rng, torch.Tensor):
        return "torch_rng is not a tensor"
    return None
