"""Server-side early stopping on the clients' validation results, keeping the best model.

Model selection reads validation figures only: ``metric: loss`` follows ``val_loss``,
``accuracy`` ``val_accuracy``, ``balanced_accuracy`` ``val_balanced_accuracy`` (each the
clients' figures weighted by their examples). The test set is never consulted.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from fedrobust.federation.server_hooks import ServerHook, ServerSetup
from fedrobust.train.config import EarlyStoppingConfig

log = logging.getLogger("fedrobust.server")


class EarlyStopping:
    """Tracks the best round of a metric and says when to stop.

    Parameters
    ----------
    cfg : EarlyStoppingConfig
        ``metric`` (accuracy | balanced_accuracy: higher is better; loss: lower is
        better), ``patience`` and ``min_delta``.
    """

    def __init__(self, cfg: EarlyStoppingConfig) -> None:
        self.cfg = cfg
        self.best_value: float | None = None
        self.best_round = 0
        self.best_state: dict[str, torch.Tensor] = {}
        self.stale_rounds = 0

    def _improves(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if self.cfg.metric == "loss":
            return value < self.best_value - self.cfg.min_delta
        return value > self.best_value + self.cfg.min_delta

    def update(self, rnd: int, figures: dict[str, Any], model: torch.nn.Module) -> bool:
        """Record round ``rnd`` (its validation figure); return True to stop now.

        A round without a validation figure (no client replied) does not improve."""
        raw = figures.get(f"val_{self.cfg.metric}")
        value = float("nan") if raw is None else float(raw)
        if value == value and self._improves(value):
            self.best_value, self.best_round, self.stale_rounds = value, rnd, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale_rounds += 1
        return self.stale_rounds >= self.cfg.patience

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state (tensors and plain values)."""
        return {
            "best_value": self.best_value,
            "best_round": self.best_round,
            "best_state": self.best_state,
            "stale_rounds": self.stale_rounds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value = state["best_value"]
        self.best_round = int(state["best_round"])
        self.best_state = dict(state["best_state"])
        self.stale_rounds = int(state["stale_rounds"])


class EarlyStoppingHook(ServerHook):
    """``train.early_stopping``: stop when the metric stalls; keep the best round's model."""

    name = "early_stopping"

    def __init__(self, cfg: EarlyStoppingConfig) -> None:
        self.stopper = EarlyStopping(cfg)
        self.stopped = False

    @classmethod
    def create(cls, setup: ServerSetup) -> EarlyStoppingHook | None:
        cfg = setup.scenario.train.early_stopping
        return cls(cfg) if cfg is not None else None

    def should_stop(self, rnd: int, figures: dict[str, Any], model: torch.nn.Module) -> bool:
        self.stopped = self.stopper.update(rnd, figures, model)
        if self.stopped:
            log.info("early stopping after round %d (best round %d)", rnd, self.stopper.best_round)
        return self.stopped

    def finish(self, model: torch.nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        stopper = self.stopper
        kept: dict[str, Any] = {}
        if stopper.best_state:  # else no round had a validation figure: keep the last
            model.load_state_dict(stopper.best_state)
            kept["model_round"] = stopper.best_round
        return {
            **kept,
            "stopped_early": self.stopped,
            "best_round": stopper.best_round,
            f"best_val_{stopper.cfg.metric}": stopper.best_value,
        }

    def state_dict(self) -> dict[str, Any]:
        return self.stopper.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stopper.load_state_dict(state)
