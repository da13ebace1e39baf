"""SecAgg+ rounds on the message API, with the real ClientApp handlers in-process.

A fake grid delivers each message to ``fedrobust.apps.clients.client_app.secagg`` with
the node's own Context, as Flower would; the server side is
``fedrobust.secagg.transport.secagg_round``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
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
from fedrobust.secagg.records import add_part
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


def instructions(
    sc: Scenario, arrays: ArrayRecord, nodes: list[int], rnd: int = 1
) -> list[Message]:
    config = recipe_config(sc, build_federation(sc.data, sc.seed).spec)
    config["server-round"] = rnd
    return [
        Message(content=RecordDict({"arrays": arrays, "config": config}),
                message_type="train", dst_node_id=node)
        for node in nodes
    ]  # fmt: skip


def global_arrays(sc: Scenario) -> ArrayRecord:
    fed = build_federation(sc.data, sc.seed)
    torch.manual_seed(sc.seed)
    return ArrayRecord(build_model(sc.model, fed.spec).state_dict())


def plaintext_updates(
    sc: Scenario, arrays: ArrayRecord, rnd: int = 1
) -> dict[int, tuple[np.ndarray, float]]:
    """Each node's update and weight from the plain train handler (same seeds)."""
    grid = FakeGrid(train)
    replies = grid.send_and_receive(instructions(sc, arrays, sorted(grid.contexts), rnd), 60)
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
    from fedrobust.secagg import Stage
    from fedrobust.secagg.transport import Instance, _collect

    sent = sent_messages([100, 101], "train.secagg")
    answer = Message(content=add_part(RecordDict(), 1, {"pk1": b"k"}), reply_to=sent[0])
    answer.metadata.__dict__["_src_node_id"] = 100
    offline = offline_error(101)
    inst = Instance(1, None, {100: 0, 101: 1}, np.random.default_rng(0))  # type: ignore[arg-type]
    replies = _collect([answer, offline], {id(answer): {1: {"pk1": b"k"}}}, sent, inst, Stage.SETUP)
    assert [m.metadata.src_node_id for m in replies] == [100]
    assert inst.dropped == {"offline": 1}  # not also a "no_reply"


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


# ------------------------------------------------------------------ pipelining


class CountingGrid(FakeGrid):
    """A FakeGrid that keeps every message it delivered, one list per exchange."""

    def __init__(self) -> None:
        super().__init__(secagg)
        self.exchanges: list[list[Message]] = []

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        self.exchanges.append(list(messages))
        return super().send_and_receive(messages, timeout)


def run_rounds(
    sc: Scenario, grid: CountingGrid, rounds: int, nodes: dict[int, int] | None = None
) -> list:
    """``rounds`` SecAgg+ rounds on one transport, the loop's sampling, one global model."""
    from fedrobust.sampling import round_clients
    from fedrobust.secagg.transport import SecAggTransport

    nodes = {pid: 100 + pid for pid in range(NUM_CLIENTS)} if nodes is None else nodes
    arrays = global_arrays(sc)
    transport = SecAggTransport(sc, 500.0, nodes)
    outcomes = []
    for rnd in range(1, rounds + 1):
        sampled = {nodes[pid]: pid for pid in round_clients(sc, rnd)}
        messages = instructions(sc, arrays, list(sampled), rnd)
        outcomes.append(transport(grid, rnd, messages, arrays, sampled))
    return outcomes


def pipelined(rounds: int = 3, **secure: object) -> Scenario:
    doc = scenario(**secure).model_dump(mode="json")
    doc["train"]["rounds"] = rounds
    return parse_scenario(doc)


def check_mean(sc: Scenario, outcome: object, rnd: int) -> None:
    """The aggregate is the weighted mean of the contributors' plaintext updates."""
    arrays = global_arrays(sc)
    plain = plaintext_updates(sc, arrays, rnd)
    survivors = [m.metadata.src_node_id for m in outcome.contributors]  # type: ignore[attr-defined]
    given = flat_delta(outcome.replies[0].content.array_records["arrays"], arrays)  # type: ignore[attr-defined]
    weights = np.array([plain[n][1] for n in survivors])
    mean = sum(plain[n][0] * w for n, w in zip(survivors, weights, strict=True)) / weights.sum()
    cfg = sc.privacy.secure_aggregation
    assert cfg is not None
    params = resolve_params(cfg.params(500.0), len(survivors), mean.size)
    bound = error_bounds(params, len(survivors), float(weights.sum())).weighted_mean
    assert np.abs(given - mean).max() <= bound + 1e-6


def test_a_pipelined_round_costs_two_exchanges_and_aggregates_the_same() -> None:
    sc = pipelined(rounds=3)
    grid = CountingGrid()
    outcomes = run_rounds(sc, grid, 3)
    secure = [o.figures["secure_aggregation"] for o in outcomes]
    assert [s["exchanges"] for s in secure] == [4, 2, 2]
    assert [s["prepared"] for s in secure] == [False, True, True]
    assert len(grid.exchanges) == 8
    for rnd, outcome in enumerate(outcomes, start=1):
        assert outcome.figures["secure_aggregation"]["failure"] is None
        assert len(outcome.contributors) == NUM_CLIENTS
        check_mean(sc, outcome, rnd)
    # exchange A of round 1 carries round 1's collection and round 2's setup; exchange B
    # round 1's unmask and round 2's share_keys; the last round prepares nothing
    from fedrobust.secagg.records import read_parts

    def stages(exchange: list[Message]) -> set[tuple[int, str]]:
        return {
            (rnd, part["stage"]) for m in exchange for rnd, part in read_parts(m.content).items()
        }

    assert stages(grid.exchanges[2]) == {(1, "collect_masked_vectors"), (2, "setup")}
    assert stages(grid.exchanges[3]) == {(1, "unmask"), (2, "share_keys")}
    assert stages(grid.exchanges[6]) == {(3, "collect_masked_vectors")}
    assert stages(grid.exchanges[7]) == {(3, "unmask")}


def test_every_round_has_fresh_keys_and_no_client_keeps_a_finished_round() -> None:
    from fedrobust.secagg.records import read_parts

    sc = pipelined(rounds=3)
    grid = CountingGrid()
    run_rounds(sc, grid, 2)
    keys: dict[int, set[bytes]] = {}
    for exchange in grid.exchanges:  # the share_keys messages carry the group's keys
        for m in exchange:
            for rnd, part in read_parts(m.content).items():
                if part["stage"] == "share_keys":
                    keys.setdefault(rnd, set()).update(part["pk1"] + part["pk2"])
    assert set(keys) == {1, 2, 3}
    assert len(keys[1]) == len(keys[2]) == len(keys[3]) == 2 * NUM_CLIENTS
    assert not keys[1] & keys[2] and not keys[2] & keys[3]
    for context in grid.contexts.values():  # round 3 prepared, rounds 1 and 2 erased
        assert sorted(k for k in context.state if k.startswith("secagg")) == [
            "secagg-state.3",
            "secagg-trained",
        ]


def test_pipelining_off_runs_four_exchanges_every_round() -> None:
    sc = pipelined(rounds=2, pipeline=False)
    grid = CountingGrid()
    outcomes = run_rounds(sc, grid, 2)
    assert [o.figures["secure_aggregation"]["exchanges"] for o in outcomes] == [4, 4]
    check_mean(sc, outcomes[1], 2)


def test_a_round_whose_clients_changed_runs_all_four_stages() -> None:
    from fedrobust.sampling import round_clients
    from fedrobust.secagg.transport import SecAggTransport

    sc = pipelined(rounds=3)
    grid = CountingGrid()
    nodes = {pid: 100 + pid for pid in range(NUM_CLIENTS)}
    arrays = global_arrays(sc)
    transport = SecAggTransport(sc, 500.0, nodes)
    first = {nodes[pid]: pid for pid in round_clients(sc, 1)}
    transport(grid, 1, instructions(sc, arrays, list(first)), arrays, first)
    fewer = {node: pid for node, pid in first.items() if pid != 0}  # client 0 left
    outcome = transport(grid, 2, instructions(sc, arrays, list(fewer), 2), arrays, fewer)
    secure = outcome.figures["secure_aggregation"]
    assert (secure["exchanges"], secure["prepared"], secure["failure"]) == (4, False, None)
    assert len(outcome.contributors) == NUM_CLIENTS - 1


def test_with_partial_participation_the_next_rounds_clients_are_prepared() -> None:
    sc = pipelined(rounds=3)
    doc = sc.model_dump(mode="json")
    doc["train"]["fraction_train"] = 0.67
    doc["train"]["min_train_clients"] = 2
    sc = parse_scenario(doc)
    assert sc.sampled_per_round() == 4
    grid = CountingGrid()
    outcomes = run_rounds(sc, grid, 3)
    secure = [o.figures["secure_aggregation"] for o in outcomes]
    assert [s["prepared"] for s in secure] == [False, True, True]
    assert [s["contributors"] for s in secure] == [4, 4, 4]
    check_mean(sc, outcomes[2], 3)


@pytest.mark.parametrize("stage", ["share_keys", "collect_masked_vectors", "unmask"])
def test_dropouts_in_a_pipelined_round_cost_that_round_only(stage: str) -> None:
    sc = pipelined(rounds=3, simulate_dropout={"stage": stage, "fraction": 0.17})
    grid = CountingGrid()
    outcomes = run_rounds(sc, grid, 3)
    for rnd, outcome in enumerate(outcomes, start=1):
        secure = outcome.figures["secure_aggregation"]
        assert secure["failure"] is None
        expected = NUM_CLIENTS if stage == "unmask" else NUM_CLIENTS - 1
        assert secure["contributors"] == expected
        assert outcome.dropped == {"simulated_dropout": 1}
        check_mean(sc, outcome, rnd)


def test_a_node_a_hook_left_out_of_the_instructions_takes_no_part() -> None:
    from fedrobust.secagg.transport import SecAggTransport

    sc = pipelined(rounds=2)
    grid = CountingGrid()
    arrays = global_arrays(sc)
    sampled = {100 + pid: pid for pid in range(NUM_CLIENTS)}
    messages = instructions(sc, arrays, [n for n in sampled if n != 103])
    transport = SecAggTransport(sc, 500.0, {pid: node for node, pid in sampled.items()})
    outcome = transport(grid, 1, messages, arrays, sampled)
    assert outcome.figures["secure_aggregation"]["failure"] is None
    assert 103 not in {m.metadata.src_node_id for m in outcome.contributors}
    assert len(outcome.contributors) == NUM_CLIENTS - 1
    assert all(m.metadata.dst_node_id != 103 for m in grid.exchanges[0])


def test_a_client_declining_one_round_does_not_count_as_declining_the_next() -> None:
    from fedrobust.apps.clients.client_app import refusal

    from fedrobust.federation.client_hooks import Refusal
    from fedrobust.secagg.records import read_parts

    def declining(msg: Message, context: Context) -> Message:
        stages = {p["stage"] for p in read_parts(msg.content).values()}
        if context.node_id == 101 and "collect_masked_vectors" in stages:
            return refusal(msg, Refusal("policy"))
        return secagg(msg, context)

    sc = pipelined(rounds=2)
    grid = CountingGrid()
    grid.handler = declining
    first, second = run_rounds(sc, grid, 2)
    assert first.refused == {101} and first.dropped == {"policy": 1}
    # round 2's setup rode on round 1's training: node 101 missed it, without declining it
    assert second.figures["secure_aggregation"]["prepared"]
    assert second.dropped == {"declined_previous_round": 1}
    assert second.refused == set()
    assert second.figures["secure_aggregation"]["contributors"] == NUM_CLIENTS - 1


def test_a_reply_from_a_node_nobody_asked_is_counted_and_ignored() -> None:
    from fedrobust.secagg.transport import SecAggTransport

    class Intruding(CountingGrid):
        def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
            replies = super().send_and_receive(messages, timeout)
            intruder = copy.deepcopy(replies[0])
            intruder.metadata.__dict__["_src_node_id"] = 999
            return [*replies, intruder]

    sc = pipelined(rounds=1)
    arrays = global_arrays(sc)
    grid = Intruding()
    sampled = {100 + pid: pid for pid in range(NUM_CLIENTS)}
    outcome = SecAggTransport(sc, 500.0)(
        grid, 1, instructions(sc, arrays, list(sampled)), arrays, sampled
    )
    assert outcome.figures["secure_aggregation"]["failure"] is None
    assert outcome.dropped == {"unexpected_sender": 4}  # one per exchange
    assert len(outcome.contributors) == NUM_CLIENTS
