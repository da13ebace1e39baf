"""The client's seam: a feature changes a local round through a :class:`ClientHook`.

A hook is built for one message from the round's recipe (:meth:`ClientHook.create`
returns ``None`` when the scenario does not use the feature). The local round
(:func:`fedrobust.federation.local_round.local_round`) calls every hook, in registry
order, at fixed points; each hook takes values and returns values:

1. :meth:`~ClientHook.refuse`: decline the round (a spent privacy budget, a policy);
2. :meth:`~ClientHook.plan`: change the :class:`LocalPlan`: the data (poisoning, a
   continual task), the loop plugins (adversarial examples, replay, EWC), DP-SGD;
3. :meth:`~ClientHook.personal`: the client's personal model, measured on its local
   test split (personalization); also called on an ``evaluate`` message, with the
   received global model;
4. :meth:`~ClientHook.metrics`: add to the reply's metrics after training;
5. :meth:`~ClientHook.reply`: change the records sent: the weights (update poisoning,
   private layers), or records of the feature's own (a control variate's delta); the
   ``metrics`` record is :meth:`~ClientHook.metrics`'s.

What a hook keeps between rounds lives in Flower's ``context.state`` under the record
names it declares in ``state_keys``; the local round loads them with
:meth:`~ClientHook.load_state_dict` before the round and stores
:meth:`~ClientHook.state_dict` after it, so no hook touches ``context.state`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, RecordDict
from torch import nn

from fedrobust.data import ClientData
from fedrobust.federation.records import Record
from fedrobust.models.registry import InputSpec
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.privacy.policy import ClientPolicy
from fedrobust.scenario import Scenario
from fedrobust.train import TrainPlugin, TrainResult


@dataclass(frozen=True)
class ClientJob:
    """One client's round: the recipe it received and who it is.

    Parameters
    ----------
    scenario : Scenario
        The round's recipe.
    spec : InputSpec
        Input shape and number of classes.
    config : ConfigRecord
        The message's config record (per-client settings such as DP's sigma).
    content : RecordDict
        Every record of the message (a feature's own records travel beside ``arrays``
        and ``config``).
    rnd : int
        The server round.
    partition : int
        This client's partition id.
    seed : int
        The seed of this client's round (:func:`fedrobust.seeds.client_seed`).
    policy : ClientPolicy
        The device owner's privacy policy (``node_config``).
    secure : bool
        Whether the update leaves the device masked (SecAgg+'s training stage).
    evaluating : bool
        An ``evaluate`` message: the client measures the received model, trains nothing
        it sends, and keeps no state from it.
    """

    scenario: Scenario
    spec: InputSpec
    config: ConfigRecord
    content: RecordDict
    rnd: int
    partition: int
    seed: int
    policy: ClientPolicy = ClientPolicy()
    secure: bool = False
    evaluating: bool = False


@dataclass(frozen=True)
class LocalPlan:
    """What local training will run: data, loop plugins, DP-SGD.

    The plugins run as ``first + batch + terms + last``: ``first`` and ``last`` wrap
    the others (a continual task's head and replay; EWC and LwF), ``batch`` transforms
    batches (augmentation, then adversarial examples), ``terms`` add loss terms of the
    weights (FedProx, L1).
    """

    x: np.ndarray
    y: np.ndarray
    first: tuple[TrainPlugin, ...] = ()
    batch: tuple[TrainPlugin, ...] = ()
    terms: tuple[TrainPlugin, ...] = ()
    last: tuple[TrainPlugin, ...] = ()
    dp: DPSGDRecipe | None = None

    def plugins(self) -> tuple[TrainPlugin, ...]:
        """Every plugin, in the order the loop applies them."""
        return (*self.first, *self.batch, *self.terms, *self.last)


@dataclass(frozen=True)
class Refusal:
    """A declined round: the reason the server counts, and figures it may report."""

    reason: str
    figures: dict[str, float] = field(default_factory=dict)


class ClientHook:
    """Base of the client hooks: every method returns what it was given."""

    state_keys: tuple[str, ...] = ()
    #: Records of its own the hook adds to replies (the server refuses undeclared ones).
    reply_records: tuple[str, ...] = ()

    @classmethod
    def create(cls, scenario: Scenario) -> ClientHook | None:
        """The hook for ``scenario``, or ``None`` when the scenario does not use it."""
        raise NotImplementedError

    def load_state_dict(self, state: Mapping[str, Record]) -> None:
        """Restore what :meth:`state_dict` returned in an earlier round (the records of
        ``state_keys`` this client holds; absent ones are missing from ``state``)."""

    def state_dict(self) -> dict[str, Record]:
        """Records to keep for the next round, by name (a subset of ``state_keys``)."""
        return {}

    def refuse(self, job: ClientJob, num_train: int) -> Refusal | None:
        """Decline the round (``num_train``: the client's training examples)."""
        return None

    def plan(self, job: ClientJob, model: nn.Module, plan: LocalPlan) -> LocalPlan:
        """Change the plan; ``model`` holds the received global weights."""
        return plan

    def personal(self, job: ClientJob, model: nn.Module, data: ClientData) -> nn.Module | None:
        """The client's personal model, or ``None`` when the hook keeps none.

        In a training round ``model`` holds the weights the client just trained (not to
        be changed: they are the reply's); on an ``evaluate`` message
        (``job.evaluating``), the received global weights. ``data`` is the client's own.
        """
        return None

    def metrics(
        self, job: ClientJob, result: TrainResult, metrics: dict[str, float | int]
    ) -> dict[str, float | int]:
        """Add to (or change) the reply's metrics."""
        return metrics

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        """Change the records the client sends: ``arrays`` (the trained weights) and any
        record of a feature's own."""
        return records
