"""The client halves of the client-drift strategies: one :class:`ClientHook` each.

- :class:`ScaffoldClient` (:mod:`~fedrobust.strategy.scaffold`): local steps corrected by
  ``c - c_i``; ``Δc_i`` in the reply.
- :class:`FedDynClient` (:mod:`~fedrobust.strategy.feddyn`): the dynamic regulariser
  ``-<h_k, θ> + α/2 ||θ - θ_global||²``.
- :class:`FedNovaClient` (:mod:`~fedrobust.strategy.fednova`): the update normalised by
  the client's local work ``a_i``.

They live apart from the server halves so that the strategy registry (which the
scenario's ``strategy`` section validates against) imports no client machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch
from flwr.app import ArrayRecord
from torch import nn

from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan
from fedrobust.federation.records import Record
from fedrobust.scenario import Scenario
from fedrobust.strategy.drift import (
    Arrays,
    effective_steps,
    float_arrays,
    owned_arrays,
    replace_floats,
    sgd_momentum,
    to_record,
)
from fedrobust.strategy.feddyn import CLIENT_STATE
from fedrobust.strategy.fednova import NORMALIZER, normalizer
from fedrobust.strategy.scaffold import CLIENT_CV, DELTA_CV, SERVER_CV
from fedrobust.train import TrainPlugin, TrainResult, round_lr
from fedrobust.train.device import model_device


def control_delta(
    c: Mapping[str, np.ndarray],
    c_i: Mapping[str, np.ndarray],
    x: Mapping[str, np.ndarray],
    y: Mapping[str, np.ndarray],
    steps: float,
    lr: float,
) -> Arrays:
    """``Δc_i = c_i+ - c_i`` with ``c_i+ = c_i - c + (x - y) / (steps * lr)`` (option II),
    over the keys of ``c``, in ``c``'s dtypes (``steps``: K, or the effective step count
    under momentum).

    Raises
    ------
    ValueError
        ``steps`` or ``lr`` not positive.
    """
    if steps <= 0 or lr <= 0:
        raise ValueError(f"SCAFFOLD needs steps > 0 and lr > 0 (got {steps}, {lr})")
    out: Arrays = {}
    for key, ck in c.items():
        old = np.asarray(c_i[key], dtype=np.float64)
        drift = (np.asarray(x[key], np.float64) - np.asarray(y[key], np.float64)) / (steps * lr)
        new = old - np.asarray(ck, np.float64) + drift
        out[key] = (new - old).astype(ck.dtype)
    return out


class ControlVariateCorrection(TrainPlugin):
    """Adds ``sum((c - c_i) * w)`` over the model's parameters: its gradient ``c - c_i``
    corrects every local step.

    Parameters
    ----------
    correction : Mapping[str, np.ndarray]
        ``c - c_i`` by state-dict key (keys that are not parameters, e.g. constant
        buffers, are ignored).
    """

    def __init__(self, correction: Mapping[str, np.ndarray]) -> None:
        self.correction = {k: torch.from_numpy(np.array(v)) for k, v in correction.items()}

    def before_training(self, model: nn.Module) -> nn.Module:
        device = model_device(model)  # once, not at every step
        self.correction = {k: v.to(device) for k, v in self.correction.items()}
        return model

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        terms = [
            torch.sum(self.correction[name].to(p.device, p.dtype) * p)
            for name, p in model.named_parameters()
            if name in self.correction
        ]
        return sum(terms[1:], terms[0]) if terms else None


class ScaffoldClient(ClientHook):
    """SCAFFOLD's client half: corrected local steps, ``Δc_i`` in the reply.

    Stateless: ``c`` and ``c_i`` arrive with the message (:class:`Scaffold`).
    """

    reply_records = (DELTA_CV,)

    def __init__(self) -> None:
        self.c: Arrays = {}
        self.c_i: Arrays = {}
        self.steps = 0

    @classmethod
    def create(cls, scenario: Scenario) -> ScaffoldClient | None:
        return cls() if scenario.strategy.name == "scaffold" else None

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        self.c = owned_arrays(job.content, SERVER_CV, job.partition)
        self.c_i = owned_arrays(job.content, CLIENT_CV, job.partition)
        correction = {k: self.c[k] - self.c_i[k] for k in self.c}
        return replace(plan, terms=(*plan.terms, ControlVariateCorrection(correction)))

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        self.steps = result.steps
        return metrics

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        train = job.scenario.train
        lr = round_lr(train.lr_schedule, train.optimizer.lr, job.rnd, train.rounds)
        steps = effective_steps(self.steps, sgd_momentum(train.optimizer))
        trained: ArrayRecord = records["arrays"]  # type: ignore[assignment]
        delta = control_delta(
            self.c, self.c_i, float_arrays(global_arrays), float_arrays(trained), steps, lr
        )
        return {**records, DELTA_CV: to_record(delta)}


class DynamicRegularizer(TrainPlugin):
    """Adds ``-<h_k, θ> + α/2 ||θ - θ^{t-1}||²`` over the model's parameters
    (``θ^{t-1}``: the weights the model holds when training starts).

    Parameters
    ----------
    alpha : float
        ``α`` (``strategy.alpha``).
    h : Mapping[str, np.ndarray]
        ``h_k`` by state-dict key (keys that are not parameters are ignored).
    """

    def __init__(self, alpha: float, h: Mapping[str, np.ndarray]) -> None:
        self.alpha = alpha
        self.h = {k: torch.from_numpy(np.array(v)) for k, v in h.items()}
        self.anchor: dict[str, torch.Tensor] = {}

    def before_training(self, model: nn.Module) -> nn.Module:
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.h = {k: v.to(model_device(model)) for k, v in self.h.items()}
        return model

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        terms = []
        for name, p in model.named_parameters():
            term = 0.5 * self.alpha * torch.sum((p - self.anchor[name]) ** 2)
            if name in self.h:
                term = term - torch.sum(self.h[name].to(p.device, p.dtype) * p)
            terms.append(term)
        return sum(terms[1:], terms[0]) if terms else None


class FedDynClient(ClientHook):
    """FedDyn's client half: the dynamic regulariser with the ``h_k`` the server sent."""

    @classmethod
    def create(cls, scenario: Scenario) -> FedDynClient | None:
        return cls() if scenario.strategy.name == "feddyn" else None

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        h = owned_arrays(job.content, CLIENT_STATE, job.partition)
        term = DynamicRegularizer(job.scenario.strategy.alpha, h)
        return replace(plan, terms=(*plan.terms, term))


class FedNovaClient(ClientHook):
    """FedNova's client half: ``fednova-a`` in the metrics, normalised weights sent."""

    def __init__(self) -> None:
        self.a = 1.0

    @classmethod
    def create(cls, scenario: Scenario) -> FedNovaClient | None:
        return cls() if scenario.strategy.name == "fednova" else None

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        self.a = normalizer(result.steps, sgd_momentum(job.scenario.train.optimizer))
        return {**metrics, NORMALIZER: self.a}

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        trained: ArrayRecord = records["arrays"]  # type: ignore[assignment]
        x, y = float_arrays(global_arrays), float_arrays(trained)
        scaled = {k: x[k].astype(np.float64) + (y[k].astype(np.float64) - x[k]) / self.a for k in x}
        return {**records, "arrays": replace_floats(trained, scaled)}
