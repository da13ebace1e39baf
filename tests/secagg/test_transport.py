"""SecAgg+ rounds on the message API, with the real ClientApp handlers in-process.

A fake grid delivers each message to ``fedrobust.apps.clients.client_app.secagg`` with
the node's own Context, as Flower would; the server side is
``fedrobust.secagg.transport.secagg_round``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from fedrobust.apps.clients.client_app import secagg, train
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity

from fedrobust.data import build_federation
from fedrobust.errors import FedrobustError
from fedrobust.models.build import build_model
from fedrobust.recipe import recipe_config
from fedrobust.robust.updates import flat_delta
from fedrobust.scenario import Scenario, parse_scenario
from fedrobust.secagg import error_bounds, resolve_params, share_groups
from fedrobust.secagg.records import to_records
from fedrobust.secagg.transport import graph_rng, secagg_round
from tests.flower_messages import offline_error, sent_messages

NUM_CLIENTS = 6


def scenario(**secure: object) -> Scenario:
    return parse_scenario(
        {
            "name": "sa",
            "seed": 2,
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": NUM_CLIENTS}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.1}},
            "privacy": {"secure_aggregation": {"num_shares": 5, "reconstruction_threshold": 3,
                                               **secure}},
        }
    )  # fmt: skip


@pytest.fixture(autouse=True)
def run_identity(server_identity: None) -> None:
    """Every test here builds Messages as the server does."""


class FakeGrid:
    """Delivers messages to a ClientApp function, one Context per node."""

    def __init__(self, handler: object) -> None:
        self.handler = handler
        self.contexts = {
            100 + pid: Context(
                run_id=1,
                node_id=100 + pid,
                node_config={"partition-id": pid, "num-partitions": NUM_CLIENTS},
                state=RecordDict(),
                run_config={},
            )  # fmt: skip
            for pid in range(NUM_CLIENTS)
        }

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = f"m{id(msg)}"
            TaskIdentity.node_id = msg.metadata.dst_node_id
            reply = self.handler(msg, self.contexts[msg.metadata.dst_node_id])  # type: ignore[operator]
            reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
            TaskIdentity.node_id = 1
            replies.append(reply)
        return replies


def instructions(sc: Scenario, arrays: ArrayRecord, nodes: list[int]) -> list[Message]:
    config = recipe_config(sc, build_federation(sc.data, sc.seed).spec)
    config["server-round"] = 1
    return [
        Message(content=RecordDict({"arrays": arrays, "config": config}),
                message_type="train", dst_node_id=node)
        for node in nodes
    ]  # fmt: skip


def global_arrays(sc: Scenario) -> ArrayRecord:
    fed = build_federation(sc.data, sc.seed)
    return ArrayRecord(build_model(sc.model, fed.spec).state_dict())


def plaintext_updates(sc: Scenario, arrays: ArrayRecord) -> dict[int, tuple[np.ndarray, float]]:
    """Each node's update and weight from the plain train handler (same seeds)."""
    grid = FakeGrid(train)
    replies = grid.send_and_receive(instructions(sc, arrays, sorted(grid.contexts)), 60)
    return {
        r.metadata.src_node_id: (
            flat_delta(r.content.array_records["arrays"], arrays),
            float(r.content.metric_records["metrics"]["num-examples"]),  # type: ignore[arg-type]
        )
        for r in replies
    }


@pytest.mark.parametrize(
    ("stage", "fraction"),
    [(None, 0.0), ("share_keys", 0.17), ("collect_masked_vectors", 0.34), ("unmask", 0.34)],
)
def test_the_strategy_gets_only_the_weighted_mean_of_the_survivors(
    stage: str | None, fraction: float
) -> None:
    dropout = {} if stage is None else {"simulate_dropout": {"stage": stage, "fraction": fraction}}
    sc = scenario(**dropout)
    arrays = global_arrays(sc)
    plain = plaintext_updates(sc, arrays)
    grid = FakeGrid(secagg)
    outcome = secagg_round(grid, sc, 1, instructions(sc, arrays, sorted(grid.contexts)), arrays,
                           max_weight=max(w for _, w in plain.values()))  # fmt: skip
    survivors = [m.metadata.src_node_id for m in outcome.contributors]
    secure = outcome.figures["secure_aggregation"]
    expected_count = (
        NUM_CLIENTS - round(fraction * NUM_CLIENTS) if stage != "unmask" else NUM_CLIENTS
    )
    assert len(survivors) == expected_count
    assert secure["failure"] is None
    assert secure["dropouts"].get(stage, 0) == NUM_CLIENTS - len(survivors) or stage == "unmask"
    # what the strategy is given: k identical replies, none of them anyone's own update
    given = [flat_delta(r.content.array_records["arrays"], arrays) for r in outcome.replies]
    assert len(given) == len(survivors)
    assert all(np.array_equal(g, given[0]) for g in given)
    weights = np.array([plain[n][1] for n in survivors])
    mean = sum(plain[n][0] * w for n, w in zip(survivors, weights, strict=True)) / weights.sum()
    cfg = sc.privacy.secure_aggregation
    assert cfg is not None
    params = resolve_params(cfg.params(max(w for _, w in plain.values())), NUM_CLIENTS, mean.size)
    bound = error_bounds(params, len(survivors), float(weights.sum())).weighted_mean
    assert np.abs(given[0] - mean).max() <= bound + 1e-6  # float32 weights in the reply
    for node in survivors:
        assert not np.allclose(given[0], plain[node][0])
    # FedAvg over the k copies is the aggregate itself
    new, _ = FedAvg().aggregate_train(1, copy.copy(outcome.replies))
    assert np.allclose(flat_delta(new, arrays), given[0], atol=1e-6)


def test_too_few_survivors_give_no_aggregate_and_a_reason() -> None:
    sc = scenario(simulate_dropout={"stage": "collect_masked_vectors", "fraction": 0.67})
    arrays = global_arrays(sc)
    grid = FakeGrid(secagg)
    outcome = secagg_round(grid, sc, 1, instructions(sc, arrays, sorted(grid.contexts)), arrays,
                           max_weight=500.0)  # fmt: skip
    assert outcome.replies == []
    failure = outcome.figures["secure_aggregation"]["failure"]
    assert "collect_masked_vectors" in failure
    assert "below reconstruction_threshold=3" in failure
    assert outcome.dropped == {"simulated_dropout": 4}


def test_values_outside_the_clipping_range_are_clipped_and_counted() -> None:
    sc = scenario(clipping_range=0.001)
    arrays = global_arrays(sc)
    grid = FakeGrid(secagg)
    outcome = secagg_round(grid, sc, 1, instructions(sc, arrays, sorted(grid.contexts)), arrays,
                           max_weight=500.0)  # fmt: skip
    given = flat_delta(outcome.replies[0].content.array_records["arrays"], arrays)
    assert outcome.figures["secure_aggregation"]["clipped"] > 0
    assert np.abs(given).max() <= 0.001 + 1e-6


def test_an_offline_node_counts_once_as_offline_in_a_secagg_stage() -> None:

    from fedrobust.federation.server_hooks import RoundOutcome
    from fedrobust.secagg import Stage
    from fedrobust.secagg.transport import _collect

    sent = sent_messages([100, 101], "train.secagg")
    answer = Message(content=to_records({"stage": "setup"}), reply_to=sent[0])
    answer.metadata.__dict__["_src_node_id"] = 100
    offline = offline_error(101)

    class Grid:
        def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
            return [answer, offline]

    outcome = RoundOutcome()
    replies = _collect(Grid(), sent, 5.0, outcome, Stage.SETUP, {100: 0, 101: 1})  # type: ignore[arg-type]
    assert [m.metadata.src_node_id for m in replies] == [100]
    assert outcome.dropped == {"offline": 1}  # not also a "no_reply"


def _groups(sc: Scenario, rnd: int) -> dict[int, list[int]]:
    return share_groups(list(range(100, 130)), 5, graph_rng(sc, rnd))


def test_the_neighbour_graph_is_secret_by_default_and_seeded_when_reproducible() -> None:
    sc = scenario()
    assert not sc.privacy.dp.reproducible
    assert _groups(sc, 1) != _groups(sc, 1)  # same seed and round, fresh secret permutation
    dp = {"mode": "sample", "noise_multiplier": 1.0, "reproducible": True}
    reproducible = scenario_with(dp=dp)
    assert _groups(reproducible, 1) == _groups(reproducible, 1)
    assert _groups(reproducible, 1) != _groups(reproducible, 2)


def scenario_with(dp: dict, **secure: object) -> Scenario:
    doc = scenario(**secure).model_dump(mode="json")
    doc["privacy"]["dp"] = dp
    return parse_scenario(doc)


def test_a_threshold_of_half_the_group_is_refused_unless_allowed() -> None:
    with pytest.raises(FedrobustError) as refused:
        scenario(reconstruction_threshold=2)  # of num_shares = 5
    assert refused.value.where == "privacy.secure_aggregation.reconstruction_threshold"
    assert "allow_low_threshold" in str(refused.value)
    allowed = scenario(reconstruction_threshold=2, allow_low_threshold=True)
    assert allowed.privacy.secure_aggregation is not None
    assert allowed.privacy.secure_aggregation.allow_low_threshold
