"""Server-side early stopping on the global test metrics, keeping the best model."""

from __future__ import annotations

from typing import Any

import torch

from fedrobust.scenario import EarlyStoppingConfig


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
        """Record round ``rnd``; return True when the run should stop now."""
        value = float(figures[self.cfg.metric])
        if self._improves(value):
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
