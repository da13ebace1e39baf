"""FedDyn (``strategy.name: feddyn``): a dynamic regulariser aligns local and global optima.

Acar et al. 2021, "Federated Learning Based on Dynamic Regularization",
https://arxiv.org/abs/2111.04263, Algorithm 1.

Client (:class:`FedDynClient`) minimises
``L_k(θ) - <h_k, θ> + α/2 ||θ - θ^{t-1}||²`` (:class:`DynamicRegularizer`, a penalty of
the weights), where ``h_k`` is the client's gradient state (∇L_k at its last local
optimum) and ``α`` is ``strategy.alpha``. After training the paper's client sets
``h_k <- h_k - α (θ_k - θ^{t-1})``; here the server does it (it sees ``θ_k``) and sends
``h_k`` with each training message, so the client keeps no state and a resumed run, or a
restarted client, continues exactly.

Server (:class:`FedDyn`): ``h <- h - α (1/m) Σ_{k∈P} (θ_k - θ^{t-1})`` (m: every client of
the run) and ``θ^t = mean_k θ_k - h/α``, the mean being our FedAvg's (weighted by each
reply's ``num-examples``; the paper's is uniform over the participants, the same for
equal partitions).

Under DP-SGD the penalty's gradient joins the privatised gradient after clipping and
noise, and ``h_k`` is computed from released weights: post-processing, so epsilon is
FedAvg's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from fedrobust.federation.records import Record
from fedrobust.strategy.drift import (
    ClientStateStrategy,
    float_arrays,
    replace_floats,
    to_record,
)

#: Message record: the client's gradient state ``h_k``.
CLIENT_STATE = "feddyn-h"


class FedDyn(ClientStateStrategy):
    """FedDyn's server half on Flower's message-API FedAvg: ``h``, every client's ``h_k``.

    Parameters
    ----------
    num_clients : int
        m, every client of the run.
    sampled : callable
        The partitions of a round, in the order the loop addresses them.
    alpha : float
        ``α`` (``strategy.alpha``).
    **kwargs
        Flower's FedAvg options.
    """

    def __init__(
        self,
        num_clients: int,
        sampled: Callable[[int], list[int]],
        alpha: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_clients, sampled, **kwargs)
        if alpha <= 0:
            raise ValueError(f"FedDyn needs alpha > 0 (got {alpha})")
        self.alpha = alpha

    def client_records(self, partition: int) -> dict[str, Record]:
        return {CLIENT_STATE: to_record(self.client_state(partition))}  # h_k

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """``θ^t = mean_k θ_k - h/α`` after ``h`` and each contributor's ``h_k`` move."""
        pairs = self.by_partition(replies)
        if not pairs:
            return None, None
        arrays, metrics = self.weighted_mean(server_round, [m for _, m in pairs])
        if arrays is None:
            return None, metrics
        x = {k: v.astype(np.float64) for k, v in self.global_floats.items()}
        drifts = []
        for pid, msg in pairs:
            theta_k = float_arrays(msg.content.array_records["arrays"])
            drifts.append((pid, {k: theta_k[k] - x[k] for k in x}))
        # h -= α/m Σ (θ_k - θ), h_k -= α (θ_k - θ)
        self.fold(drifts, to_shared=-self.alpha / self.num_clients, to_client=-self.alpha)
        mean, h = float_arrays(arrays), self.shared
        theta = {k: mean[k].astype(np.float64) - h[k] / self.alpha for k in h}
        return replace_floats(arrays, theta), metrics
