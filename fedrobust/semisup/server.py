"""The server's view of limited labels: how much of the clients' unlabelled data the
round's pseudo-labels used (``pseudo_label_rate`` in each round of metrics.json)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup


class SemiSupervisedMetricsHook(ServerHook):
    """``train.semi_supervised``: the contributors' mean pseudo-label rate per round.

    The rate is the share of a client's unlabelled inputs whose confidence passed
    ``threshold`` during its local training (FixMatch's mask, or pseudo-labelling's
    selection), as each client reports it; a reply without a finite rate in [0, 1]
    is left out.
    """

    @classmethod
    def create(cls, setup: ServerSetup) -> SemiSupervisedMetricsHook | None:
        return cls() if setup.scenario.train.semi_supervised is not None else None

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        rates = []
        for msg in view.outcome.contributors:
            metrics = msg.content.metric_records.get("metrics")
            rate = None if metrics is None else metrics.get("pseudo-label-rate")
            if isinstance(rate, int | float) and math.isfinite(rate) and 0 <= rate <= 1:
                rates.append(float(rate))
        return {"pseudo_label_rate": sum(rates) / len(rates) if rates else None}
