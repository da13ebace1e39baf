"""The chaos client: every class of malformed reply is dropped with its own reason, the
aggregate of the sound replies is unchanged, and a run with such clients completes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fedrobust.apps.server.loop import run_federation
from flwr.app import Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedrobust.federation.records import for_strategy
from fedrobust.federation.screening import screen_replies
from fedrobust.robust.malformed import MALFORMATIONS, malform_metrics, malform_records
from fedrobust.robust.updates import flat_delta
from fedrobust.scenario import parse_scenario
from tests.federation.test_screening import GLOBAL, reply
from tests.server.test_loop import InProcessGrid


def malformed(node: int, kind: str) -> Message:
    honest = reply(node, rnd=1)
    records = malform_records(kind, {"arrays": honest.content.array_records["arrays"]})
    metrics = malform_metrics(kind, dict(honest.content.metric_records["metrics"]))
    content = RecordDict({**records, "metrics": MetricRecord(metrics)})  # type: ignore[arg-type]
    return Message(metadata=honest.metadata, content=content)


@pytest.mark.parametrize("kind", list(MALFORMATIONS))
def test_each_malformed_reply_is_dropped_and_the_aggregate_is_unchanged(kind: str) -> None:
    sampled = {100: 0, 101: 1, 102: 2}
    honest = [reply(100, rnd=1), reply(101, rnd=1)]
    accepted, dropped, _ = screen_replies(
        [*honest, malformed(102, kind)], GLOBAL, sampled, caps={0: 50, 1: 50, 2: 50}, rnd=1
    )
    reason = MALFORMATIONS[kind]
    if reason is None:  # harmless: accepted, and the strategy never sees the extra metric
        assert len(accepted) == 3 and not dropped
        FedAvg().aggregate_train(1, [for_strategy(m) for m in accepted])
        return
    assert dict(dropped) == {reason: 1}
    assert [m.metadata.src_node_id for m in accepted] == [100, 101]
    clean, _ = FedAvg().aggregate_train(1, [for_strategy(m) for m in honest])
    got, _ = FedAvg().aggregate_train(1, [for_strategy(m) for m in accepted])
    assert clean is not None and got is not None
    assert np.array_equal(flat_delta(got, GLOBAL), flat_delta(clean, GLOBAL))


def test_num_examples_above_what_the_client_declared_is_dropped() -> None:
    accepted, dropped, _ = screen_replies([reply(100, num_examples=60)], GLOBAL, {100: 0},
                                          caps={0: 50})  # fmt: skip
    assert not accepted and dict(dropped) == {"bad_num_examples": 1}


@pytest.mark.usefixtures("server_identity")
def test_a_run_with_malformed_clients_completes_every_round_and_counts_each_reason(
    tmp_path: Path,
) -> None:
    sc = parse_scenario(
        {
            "name": "chaos",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 5}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"rounds": 3, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.1}},
            "attack": {"kind": "malformed", "count": 2,
                       "malformations": ["lying_shape", "non_finite", "replay"]},
        }
    )  # fmt: skip
    run_federation(InProcessGrid(), sc, tmp_path)  # type: ignore[arg-type]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["status"] == "completed" and len(doc["rounds"]) == 3
    reasons: dict[str, int] = {}
    for row in doc["rounds"]:
        assert row["aggregated"] == 3  # the honest clients
        for reason, n in row["dropped"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    assert reasons == {"wrong_payload": 2, "non_finite": 2, "stale_reply": 2}
    assert doc["rounds"][-1]["accuracy"] > doc["initial"]["accuracy"]


@pytest.mark.usefixtures("server_identity")
def test_under_secagg_a_malformed_client_costs_only_its_own_reply(tmp_path: Path) -> None:
    sc = parse_scenario(
        {
            "name": "chaos_secagg",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 5}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"rounds": 3, "batch_size": 64},
            "attack": {"kind": "malformed", "count": 1,
                       "malformations": ["lying_shape", "metric_type", "wrong_stype"]},
            "privacy": {"secure_aggregation": {"num_shares": 5, "reconstruction_threshold": 3}},
        }
    )  # fmt: skip
    run_federation(InProcessGrid(), sc, tmp_path)  # type: ignore[arg-type]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["status"] == "completed" and len(doc["rounds"]) == 3
    reasons = [reason for row in doc["rounds"] for reason in row["dropped"]]
    for row in doc["rounds"]:
        assert row["secure_aggregation"]["failure"] is None and row["aggregated"] >= 4
    # the server cannot see a masked update: a broken one makes the client fail on its
    # own (client_error), bad metrics are dropped, values it could mask are clipped
    assert set(reasons) <= {"client_error", "bad_metrics"} and reasons
