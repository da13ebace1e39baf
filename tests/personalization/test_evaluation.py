"""Per-client evaluation: every round's clients and, after the last round, every client
measure the global (and personal) model on their local test splits; a hostile reply is
dropped, never trusted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fedrobust.apps.server.loop import run_federation
from flwr.app import Message, MetricRecord, RecordDict

from fedrobust.personalization.evaluation import fairness_summary
from fedrobust.report.html import write_report
from fedrobust.scenario import Scenario, parse_scenario
from tests.grid import NUM_CLIENTS, InProcessGrid


def _scenario(personalization: dict[str, Any] | None, rounds: int = 3) -> Scenario:
    doc: dict[str, Any] = {
        "name": "pers",
        "data": {"dataset": "digits", "local_test_fraction": 0.2,
                 "partition": {"kind": "pathological", "num_clients": NUM_CLIENTS,
                               "classes_per_client": 3}},
        "train": {"rounds": rounds, "batch_size": 32,
                  "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
    }  # fmt: skip
    if personalization is not None:
        doc["personalization"] = personalization
    return parse_scenario(doc)


def test_fairness_summary_reports_mean_worst_tenth_spread_and_each_client() -> None:
    values = {
        i: v for i, v in enumerate([0.9, 0.5, 0.7, 1.0, 0.8, 0.6, 0.95, 0.85, 0.75, 0.65, 0.3])
    }
    summary = fairness_summary(values)
    assert summary is not None
    assert summary["mean"] == pytest.approx(sum(values.values()) / 11)
    assert summary["worst_10pct"] == pytest.approx((0.3 + 0.5) / 2)  # ceil(1.1) = 2 clients
    assert summary["clients"] == 11
    assert summary["per_client"]["10"] == 0.3
    assert fairness_summary({}) is None
    assert fairness_summary({3: 0.4})["worst_10pct"] == 0.4  # type: ignore[index]


def test_personal_models_serve_their_clients_better_than_the_global_model(
    tmp_path: Path, server_identity: None
) -> None:
    final = run_federation(InProcessGrid(), _scenario({"method": "fedper"}), tmp_path)
    personal, global_ = final["personalized"], final["global_local"]
    assert sorted(personal["per_client"]) == [str(i) for i in range(NUM_CLIENTS)]
    assert final["client_evaluation"] == {
        "asked": NUM_CLIENTS,
        "answered": NUM_CLIENTS,
        "dropped": {},
    }
    # three classes per client: the private head knows which; the untrained global head not
    assert personal["mean"] > global_["mean"] + 0.3
    assert personal["worst_10pct"] <= personal["mean"]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    last = doc["rounds"][-1]
    assert last["personalized"]["clients"] == NUM_CLIENTS  # every client trains each round
    assert all(0 <= row["local_accuracy"] <= 1 and 0 <= row["personal_accuracy"] <= 1
               for row in last["clients"])  # fmt: skip
    report = write_report(tmp_path).read_text()
    assert "Clients: local test accuracy (fairness)" in report


class HostileEvaluation(InProcessGrid):
    """Client 0 claims an accuracy of 5 on the final evaluation; client 1 sends no metrics."""

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        replies = super().send_and_receive(messages, timeout)
        for reply in replies:
            if reply.metadata.message_type != "evaluate" or reply.has_error():
                continue
            if reply.metadata.src_node_id == 100:
                metrics = reply.content.metric_records["metrics"]
                metrics["local-accuracy"] = 5.0
            elif reply.metadata.src_node_id == 101:
                reply.content = RecordDict({"other": MetricRecord({"x": 1.0})})
        return replies


def test_hostile_evaluation_replies_are_dropped_and_the_run_finishes(
    tmp_path: Path, server_identity: None
) -> None:
    final = run_federation(HostileEvaluation(), _scenario(None, rounds=1), tmp_path)
    evaluation = final["client_evaluation"]
    assert evaluation["answered"] == NUM_CLIENTS - 2
    assert evaluation["dropped"] == {"bad_metrics": 2}
    assert sorted(final["global_local"]["per_client"]) == ["2", "3", "4"]
    assert "personalized" not in final  # no personalization section: global figures only


@pytest.mark.parametrize(("strategy", "method"), [("scaffold", "fedper"), ("fednova", "ditto")])
def test_client_drift_strategies_compose_with_personalization(
    strategy: str, method: str, tmp_path: Path, server_identity: None
) -> None:
    sc = _scenario({"method": method}, rounds=2).model_copy(
        update={"strategy": parse_scenario({"name": "s", "strategy": {"name": strategy}}).strategy}
    )
    final = run_federation(InProcessGrid(), sc, tmp_path)
    assert final["client_evaluation"]["answered"] == NUM_CLIENTS
    assert final["personalized"]["mean"] > final["global_local"]["mean"]
