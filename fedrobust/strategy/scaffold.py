"""SCAFFOLD (``strategy.name: scaffold``): control variates correct each client's drift.

Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated
Learning", https://arxiv.org/abs/1910.06378, option II of Algorithm 1.

Server (:class:`Scaffold`) keeps the server control variate ``c`` and, for every client
that ever contributed, its control variate ``c_i`` (the sum of the client's ``Δc_i``,
which the server receives anyway). Each sampled client gets ``c`` and its own ``c_i``
in its training message, so the client keeps no state: a restarted client, or a run
resumed in a new simulation, continues exactly.

Client (:class:`~fedrobust.strategy.client.ScaffoldClient`): each local step's gradient
is corrected by ``c - c_i``, as the penalty ``sum((c - c_i) * w)`` whose gradient is
exactly that (:class:`~fedrobust.strategy.client.ControlVariateCorrection`). After ``K``
steps (``TrainResult.steps``) at the round's learning rate ``η``,
``c_i+ = c_i - c + (x - y_i) / (K η)``; the reply carries ``Δc_i = c_i+ - c_i`` as the
ArrayRecord ``scaffold-dc``.

``(x - y_i) / (K η)`` is the mean corrected gradient only for plain SGD. With SGD
momentum ``ρ`` the displacement of ``K`` steps is ``a(K, ρ)`` times a step's (the
heavy-ball factor, FedNova's ``a_i``: :func:`~fedrobust.strategy.drift.effective_steps`,
which is ``K`` when ρ = 0), so ``K`` is replaced by ``a(K, ρ)``: with ``K`` itself the
estimate is ``1/(1-ρ)`` times too large, the correction feeds back on itself with gain
``ρ/(1-ρ)`` (9 at ρ = 0.9) and training stalls (digits, 5 clients of 3 classes, MLP,
lr 0.1, ρ = 0.9, 25 rounds: test accuracy 0.28 with ``K``, 0.91 with ``a(K, ρ)``, 0.83
for FedAvg; one seed, an illustration, not a benchmark). Nesterov momentum, weight
decay and Adam/RMSprop (taken as plain steps) keep it the paper's option-II
approximation.

Under DP-SGD (``privacy.dp.mode: sample``) the penalty's gradient joins the privatised
gradient after clipping and noise, and ``Δc_i`` is a function of the released weights
and of what the server sent: both are post-processing, so epsilon is FedAvg's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from fedrobust.federation.records import Record
from fedrobust.federation.screening import model_shaped_problem
from fedrobust.strategy.drift import (
    ClientStateStrategy,
    float_arrays,
    replace_floats,
    to_record,
)

log = logging.getLogger("fedrobust.server")

#: Message records: the server control variate, the client's own control variate.
SERVER_CV = "scaffold-c"
CLIENT_CV = "scaffold-ci"
#: Reply record: the client's control-variate delta.
DELTA_CV = "scaffold-dc"


class Scaffold(ClientStateStrategy):
    """SCAFFOLD's server half on Flower's message-API FedAvg.

    ``x <- x + η_g * mean(Δy)``: the mean is our FedAvg's, weighted by each reply's
    ``num-examples`` (the paper averages the sampled clients uniformly; with equal
    partitions the two agree), so ``η_g = 1`` (the default) is plain FedAvg of the
    weights. ``c <- c + (1/N) Σ_{i∈S} Δc_i`` (N: every client of the run, unweighted, as
    in the paper), and ``c_i <- c_i + Δc_i`` for each contributor. The control variates
    cover the model's floating-point arrays.

    Parameters
    ----------
    num_clients : int
        N, every client of the run.
    sampled : callable
        The partitions of a round, in the order the loop addresses them.
    server_lr : float
        ``η_g`` (``strategy.server_lr``, default 1).
    **kwargs
        Flower's FedAvg options.
    """

    reply_records = (DELTA_CV,)

    def __init__(
        self,
        num_clients: int,
        sampled: Callable[[int], list[int]],
        server_lr: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_clients, sampled, **kwargs)
        self.server_lr = server_lr
        self.global_record: ArrayRecord | None = None

    def start_round(self, arrays: ArrayRecord) -> None:
        super().start_round(arrays)  # c (shared) starts at zeros
        self.global_record = arrays

    def client_records(self, partition: int) -> dict[str, Record]:
        return {
            SERVER_CV: to_record(self.shared),
            CLIENT_CV: to_record(self.client_state(partition)),
        }

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg of the weights (moved by ``η_g``), then ``c`` and each ``c_i``.

        A reply without a sound ``scaffold-dc`` (screening drops those first) is left
        out of both.
        """
        assert self.global_record is not None, "configure_train runs first"
        sound = []
        for pid, msg in self.by_partition(replies):
            problem = model_shaped_problem(msg.content.get(DELTA_CV), self.global_record)
            if problem is None:
                sound.append((pid, msg))
            else:
                log.warning("SCAFFOLD leaves out client %d's reply: %s", pid, problem)
        if not sound:
            return None, None
        arrays, metrics = self.weighted_mean(server_round, [m for _, m in sound])
        if arrays is None:
            return None, metrics
        if self.server_lr != 1.0:
            mean, x = float_arrays(arrays), self.global_floats
            moved = {
                k: x[k].astype(np.float64) + self.server_lr * (mean[k] - x[k].astype(np.float64))
                for k in x
            }
            arrays = replace_floats(arrays, moved)
        deltas = [(pid, float_arrays(msg.content.array_records[DELTA_CV])) for pid, msg in sound]
        self.fold(deltas, to_shared=1.0 / self.num_clients, to_client=1.0)  # c, c_i
        return arrays, metrics
