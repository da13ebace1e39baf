"""Per-client evaluation: who the global model (and each personal model) serves.

Each client holds a local test split (``data.local_test_fraction``) drawn from its own
distribution. Two sources of per-client figures:

- every training round, each client that trains measures the global model it received
  and, with ``personalization``, its personal model after the round (its reply's
  ``local-accuracy`` / ``personal-accuracy``); :class:`ClientEvaluationHook` summarises
  them as the round's ``global_local`` and ``personalized`` figures;
- after the last round, :func:`evaluate_clients` sends the kept global model to every
  client in an ``evaluate`` message; the replies make ``final.global_local`` and
  ``final.personalized``.

A summary is ``{mean, worst_10pct, std, clients, per_client}``: ``worst_10pct`` is the
mean accuracy of the worst-served tenth of the clients (at least one client).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from torch import nn

from fedrobust.federation.exchange import send_and_receive
from fedrobust.federation.screening import screen
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.models.registry import InputSpec
from fedrobust.recipe import recipe_config
from fedrobust.scenario import Scenario

GLOBAL, PERSONAL = "local-accuracy", "personal-accuracy"


def fairness_summary(per_client: dict[int, float]) -> dict[str, Any] | None:
    """Mean, worst 10 %, spread and the values of per-client accuracies (``None`` when
    there are none)."""
    if not per_client:
        return None
    values = np.sort(np.array(list(per_client.values()), dtype=np.float64))
    worst = max(1, math.ceil(0.1 * len(values)))
    return {
        "mean": float(values.mean()),
        "worst_10pct": float(values[:worst].mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "clients": len(values),
        "per_client": {str(pid): per_client[pid] for pid in sorted(per_client)},
    }


def accuracy_of(metrics: MetricRecord, key: str) -> float | None:
    """A reply's accuracy figure ``key`` when it is a number in [0, 1], else ``None``."""
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def _figures(by_client: dict[int, MetricRecord], personalized: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    keys = [("global_local", GLOBAL)] + ([("personalized", PERSONAL)] if personalized else [])
    for name, key in keys:
        values = {pid: v for pid, m in by_client.items() if (v := accuracy_of(m, key)) is not None}
        figures[name] = fairness_summary(values)
    return figures


class ClientEvaluationHook(ServerHook):
    """The round's per-client figures on the clients' local test splits (from the
    training replies: the global model each client received, and its personal model)."""

    def __init__(self, scenario: Scenario) -> None:
        self.personalized = scenario.personalization is not None

    @classmethod
    def create(cls, setup: ServerSetup) -> ClientEvaluationHook | None:
        scenario = setup.scenario
        return cls(scenario) if scenario.data.local_test_fraction > 0 else None

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        by_client = {
            view.partition(msg): msg.content.metric_records["metrics"]
            for msg in view.outcome.contributors
        }
        out = _figures(by_client, self.personalized)
        rows = []
        for row in figures.get("clients", []):
            metrics = by_client.get(int(row["client"]))
            extra = {}
            if metrics is not None:
                extra["local_accuracy"] = accuracy_of(metrics, GLOBAL)
                if self.personalized:
                    extra["personal_accuracy"] = accuracy_of(metrics, PERSONAL)
            rows.append({**row, **extra})
        out["clients"] = rows
        return out


def evaluate_clients(
    grid: Grid,
    scenario: Scenario,
    spec: InputSpec,
    nodes: dict[int, int],
    model: nn.Module,
    rnd: int,
) -> dict[str, Any]:
    """Send ``model`` (the one the run keeps) to every client in an ``evaluate`` message
    and summarise the replies; nothing without local test splits
    (``data.local_test_fraction`` 0).

    Parameters
    ----------
    grid : Grid
        Flower's grid.
    scenario : Scenario
        The run's scenario (``simulation.timeout`` bounds the wait).
    spec : InputSpec
        The data's input spec (part of the recipe).
    nodes : dict[int, int]
        Partition id -> node id of every client.
    model : nn.Module
        The global model to measure.
    rnd : int
        The round its weights come from (echoed by each reply).

    Returns
    -------
    dict
        ``global_local`` and (with personalization) ``personalized`` summaries, and
        ``client_evaluation``: clients asked, answered, and dropped replies by reason.
    """
    if scenario.data.local_test_fraction == 0:
        return {}
    arrays = ArrayRecord(model.state_dict())
    config = recipe_config(scenario, spec)
    config["server-round"] = rnd
    sent = [
        Message(
            content=RecordDict({"arrays": arrays, "config": config}),
            message_type=MessageType.EVALUATE,
            dst_node_id=node,
        )
        for node in nodes.values()
    ]
    replies = send_and_receive(grid, sent, scenario.simulation.timeout)
    asked = {node: pid for pid, node in nodes.items()}

    def payload(msg: Message) -> str | None:
        metrics = msg.content.metric_records.get("metrics")
        if not isinstance(metrics, MetricRecord) or metrics.get("round") != rnd:
            return "bad_metrics"
        if metrics.get("num-test", 0) and accuracy_of(metrics, GLOBAL) is None:
            return "bad_metrics"
        return None

    accepted, dropped, _ = screen(replies, asked, sent, payload)
    by_client = {
        asked[m.metadata.src_node_id]: m.content.metric_records["metrics"] for m in accepted
    }
    figures = _figures(by_client, scenario.personalization is not None)
    figures["client_evaluation"] = {
        "asked": len(sent),
        "answered": sum(1 for m in by_client.values() if accuracy_of(m, GLOBAL) is not None),
        "dropped": dict(sorted(dropped.items())),
    }
    return figures
