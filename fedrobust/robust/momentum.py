"""Client momentum for Byzantine-robust aggregation (``train.client_momentum: beta``).

Karimireddy, He & Jaggi 2021, "Learning from History for Byzantine Robust Optimization"
(https://arxiv.org/abs/2012.10333): each honest worker sends its momentum
``m_i = (1 - beta) g_i + beta m_i`` instead of its fresh stochastic update. Averaging
over its own history shrinks an honest client's noise by about ``(1 - beta)``, so a
robust rule tells honest updates from crafted ones more easily, and attackers who
couple small perturbations across rounds (ALIE-style time-coupled attacks) can no longer
hide in the per-round noise.

Here ``g_i`` is the client's round update ``Δ_i = trained - received global`` over the
floating-point arrays of the state dict (the update every defence works on,
:mod:`fedrobust.robust.updates`); integer buffers (BatchNorm's ``num_batches_tracked``)
are sent as trained. The reply is ``global + m̂_i`` with the bias-corrected momentum
``m̂_i = m_i / (1 - beta^k_i)``, ``k_i`` the rounds this client has trained and
``m_i`` started at zero (as Adam corrects its moments). Without the correction the first
rounds would be shrunk by ``(1 - beta^k)`` (a tenth at beta 0.9, two thirds after ten
rounds): a pull towards "no update" that is no part of any client's history, and that
hits a client sampled for the first time late in a run as hard as at the start. With
it, ``m̂_i`` is a normalised exponential average of the client's own updates (weights
summing to one), and the first reply is the plain update.

A client keeps ``m_i`` and ``k_i`` in Flower's ``context.state`` (records
:data:`MOMENTUM`, :data:`MOMENTUM_ROUNDS`); a client not sampled keeps them as they
were, and a round the client refuses (a spent DP budget) leaves them untouched.

A malicious client in a round it attacks does not follow the protocol: it sends what it
wants. The hook leaves its reply as trained (and its state as it was), so the malicious
hook, which runs after this one (:mod:`fedrobust.federation.registry`), crafts its
update from the raw one, undamped. Colluding attackers (ALIE, IPM, min-max) craft their
updates on the server from the honest replies, which are momenta.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord

from fedrobust.federation.client_hooks import ClientHook, ClientJob
from fedrobust.federation.records import Record
from fedrobust.robust.malicious import attacking
from fedrobust.scenario import Scenario
from fedrobust.strategy.drift import Arrays, float_arrays, replace_floats, to_record

#: The client's momentum ``m_i`` (float64, by state-dict key) in ``context.state``.
MOMENTUM = "client-momentum"
#: The rounds ``k_i`` the client's momentum has averaged, in ``context.state``.
MOMENTUM_ROUNDS = "client-momentum-rounds"


def momentum_step(momentum: Mapping[str, np.ndarray], delta: Arrays, beta: float) -> Arrays:
    """``beta * m + (1 - beta) * delta`` per key, in float64 (``m`` zeros when empty).

    Raises
    ------
    ValueError
        When ``momentum`` holds other arrays than ``delta`` (another model).
    """
    if momentum and set(momentum) != set(delta):
        raise ValueError("client momentum holds other arrays than the model's update")
    out: Arrays = {}
    for key, d in delta.items():
        d64 = np.asarray(d, dtype=np.float64)
        old = np.asarray(momentum[key], np.float64) if momentum else np.zeros_like(d64)
        out[key] = beta * old + (1.0 - beta) * d64
    return out


def bias_corrected(momentum: Arrays, beta: float, rounds: int) -> Arrays:
    """``m / (1 - beta^rounds)``: the normalised average of the ``rounds`` updates in ``m``."""
    if rounds < 1:
        raise ValueError(f"needs at least one round of momentum (got {rounds})")
    scale = 1.0 - beta**rounds
    return {key: m / scale for key, m in momentum.items()}


class ClientMomentumHook(ClientHook):
    """``train.client_momentum``: the client sends ``global + m̂_i``, its bias-corrected
    momentum of updates, instead of its trained weights."""

    state_keys = (MOMENTUM, MOMENTUM_ROUNDS)

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self.momentum: Arrays = {}
        self.rounds = 0

    @classmethod
    def create(cls, scenario: Scenario) -> ClientMomentumHook | None:
        beta = scenario.train.client_momentum
        return None if beta is None else cls(beta)

    def load_state_dict(self, state: Mapping[str, Record]) -> None:
        record, rounds = state.get(MOMENTUM), state.get(MOMENTUM_ROUNDS)
        if isinstance(record, ArrayRecord) and isinstance(rounds, ConfigRecord):
            self.momentum = {k: a.numpy().astype(np.float64) for k, a in record.items()}
            self.rounds = int(rounds["rounds"])  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Record]:
        if self.rounds == 0:
            return {}
        return {
            MOMENTUM: to_record(self.momentum),
            MOMENTUM_ROUNDS: ConfigRecord({"rounds": self.rounds}),
        }

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        if attacking(job.scenario, job.partition, job.rnd):
            return records  # a Byzantine client sends what it wants, from its raw update
        trained: ArrayRecord = records["arrays"]  # type: ignore[assignment]
        start, end = float_arrays(global_arrays), float_arrays(trained)
        delta = {k: end[k].astype(np.float64) - start[k] for k in start}
        self.momentum = momentum_step(self.momentum, delta, self.beta)
        self.rounds += 1
        step = bias_corrected(self.momentum, self.beta, self.rounds)
        sent = {k: start[k].astype(np.float64) + step[k] for k in start}
        return {**records, "arrays": replace_floats(trained, sent)}
