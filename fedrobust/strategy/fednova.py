"""FedNova (``strategy.name: fednova``): normalised averaging of unequal local work.

Wang et al. 2020, "Tackling the Objective Inconsistency Problem in Heterogeneous
Federated Optimization", https://arxiv.org/abs/2007.07481.

Client (:class:`FedNovaClient`): with ``τ_i`` local steps (``TrainResult.steps``) and
SGD momentum ``ρ`` (``train.optimizer.momentum`` when the optimizer is sgd, else 0),
``a_i = [τ_i - ρ (1 - ρ^τ_i) / (1 - ρ)] / (1 - ρ)`` (``a_i = τ_i`` when ρ = 0: the
L1 norm of the paper's momentum-SGD ``a_i`` vector); the client replies with the weights
``x + (y_i - x) / a_i`` and the metric ``fednova-a = a_i``. Nesterov momentum, weight
decay, adaptive optimizers and DP-SGD's empty Poisson batches make ``a_i`` the
heavy-ball formula's approximation.

Server (:class:`FedNova`): ``x <- x + τ_eff Σ p_i (y'_i - x)`` with ``p_i = n_i / n`` (our
FedAvg's weighting by ``num-examples``) and ``τ_eff = Σ p_i a_i``.

The normalisation happens on the client, so the server needs only the weighted mean of
the normalised weights and each client's ``a_i``: under SecAgg+ the masked sum gives the
first and the metrics (which travel in the clear) the second. The client keeps no state.
Under DP-SGD ``a_i`` depends on the step count alone, which the accountant already treats
as public, and the rescaling is post-processing: epsilon is FedAvg's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedrobust.strategy.drift import (
    effective_steps,
    fedavg_mean,
    float_arrays,
    replace_floats,
    weights_of,
)

log = logging.getLogger("fedrobust.server")

#: Reply metric: the client's normaliser ``a_i``.
NORMALIZER = "fednova-a"


def normalizer(steps: int, momentum: float = 0.0) -> float:
    """FedNova's ``a_i = [τ - ρ (1 - ρ^τ) / (1 - ρ)] / (1 - ρ)`` for ``τ = steps``,
    ``ρ = momentum`` (``τ`` when ρ = 0): :func:`fedrobust.strategy.drift.effective_steps`.

    Raises
    ------
    ValueError
        ``steps < 1`` or ``momentum`` outside [0, 1).
    """
    return effective_steps(steps, momentum)


class FedNova(FedAvg):
    """FedNova's server half on Flower's message-API FedAvg: the mean of the normalised
    weights, rescaled by ``τ_eff``.

    A reply whose ``fednova-a`` is missing, not finite or not positive is dropped by
    screening in a plain round. Under SecAgg+ the masked sum already holds that client's
    update; then the round yields no aggregate (the global model stays) rather than a
    wrongly scaled one.
    """

    reply_metrics = (NORMALIZER,)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.global_arrays: ArrayRecord | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's messages; the round's global weights are kept for the rescaling."""
        self.global_arrays = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """``x + τ_eff (mean_i y'_i - x)``, ``τ_eff = Σ p_i a_i``."""
        assert self.global_arrays is not None, "configure_train runs first"
        sound = [m for m in replies if not m.has_error()]
        if not sound:
            return None, None
        a = []
        for msg in sound:
            value = msg.content.metric_records["metrics"].get(NORMALIZER)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
                log.warning("FedNova: a reply's %s is %r: no aggregate", NORMALIZER, value)
                return None, None
            a.append(float(value))  # type: ignore[arg-type]
        arrays, metrics = fedavg_mean(self, server_round, sound)
        if arrays is None:
            return None, metrics
        tau_eff = float(np.dot(weights_of(self, sound), a))
        x, mean = float_arrays(self.global_arrays), float_arrays(arrays)
        new = {
            k: x[k].astype(np.float64) + tau_eff * (mean[k].astype(np.float64) - x[k]) for k in x
        }
        return replace_floats(arrays, new), metrics
