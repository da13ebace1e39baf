"""SCAFFOLD: the corrected local step, c_i+ and Δc_i, the server's c and c_i by hand on a
two-parameter model; exact resume; hostile Δc records are dropped, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from torch import nn

from fedrobust.federation.client_hooks import ClientJob, LocalPlan
from fedrobust.federation.screening import ReplyContract, screen_replies
from fedrobust.models.registry import InputSpec
from fedrobust.strategy.client import ControlVariateCorrection, ScaffoldClient, control_delta
from fedrobust.strategy.drift import OWNER, to_record
from fedrobust.strategy.scaffold import CLIENT_CV, DELTA_CV, SERVER_CV, Scaffold
from fedrobust.train import TrainResult, local_train
from fedrobust.train.config import OptimizerConfig, TrainConfig
from tests.strategy.helpers import (
    NodeGrid,
    assert_resume_is_exact,
    config,
    record,
    reply,
    run,
    scenario,
    values,
)

pytestmark = pytest.mark.usefixtures("server_identity")


def two_weights() -> nn.Module:
    """logits = W x with W of shape (2, 1), no bias: two parameters, starting at 0."""
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)
    return model


def test_one_corrected_step_and_its_control_variate_by_hand() -> None:
    # one example x = 1 of class 0 at W = 0: softmax (1/2, 1/2), dL/dW = (-1/2, 1/2)
    grad = np.array([[-0.5], [0.5]])
    c, c_i = np.array([[0.3], [-0.1]]), np.array([[0.2], [0.2]])
    lr = 0.5
    model = two_weights()
    train = TrainConfig(batch_size=1, optimizer=OptimizerConfig(name="sgd", lr=lr, momentum=0))
    result = local_train(
        model, np.ones((1, 1), np.float32), np.zeros(1, np.int64), train=train, num_classes=2,
        seed=0, plugins=(ControlVariateCorrection({"weight": c - c_i}),),
    )  # fmt: skip
    assert result.steps == 1
    y = model.weight.detach().numpy()
    expected = -lr * (grad + c - c_i)  # y = x - η (g + c - c_i)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    # c_i+ = c_i - c + (x - y) / (K η) = g (option II after one step is option I)
    delta = control_delta({"weight": c}, {"weight": c_i}, {"weight": np.zeros((2, 1))},
                          {"weight": y}, result.steps, lr)  # fmt: skip
    np.testing.assert_allclose(c_i + delta["weight"], grad, rtol=1e-6)
    assert delta["weight"].dtype == c.dtype


def test_control_delta_formula() -> None:
    c = {"w": np.array([1.0, -2.0], np.float32)}
    c_i = {"w": np.array([0.5, 0.5], np.float32)}
    x, y = {"w": np.array([1.0, 1.0])}, {"w": np.array([0.0, 3.0])}
    delta = control_delta(c, c_i, x, y, steps=4, lr=0.25)
    # c_i+ = c_i - c + (x - y) / 1 = (0.5 - 1 + 1, 0.5 + 2 - 2) = (0.5, 0.5)
    np.testing.assert_allclose(delta["w"], [0.0, 0.0])
    assert delta["w"].dtype == np.float32
    with pytest.raises(ValueError, match="steps > 0"):
        control_delta(c, c_i, x, y, steps=0, lr=0.1)


def job(momentum: float, partition: int = 0, owner: int = 0) -> ClientJob:
    sc = scenario("scaffold", 1, train={"optimizer": {"name": "sgd", "lr": 0.5,
                                                      "momentum": momentum}})  # fmt: skip
    content = RecordDict(
        {
            SERVER_CV: record(w=[0.2, 0.0]),
            CLIENT_CV: record(w=[0.1, 0.1]),
            OWNER: ConfigRecord({"partition": owner}),
        }
    )
    spec = InputSpec(shape=(1,), num_classes=2)
    return ClientJob(sc, spec, ConfigRecord(), content, 1, partition, 0)


@pytest.mark.parametrize(("momentum", "divisor"), [(0.0, 3.0), (0.9, 5.61)])
def test_the_client_hook_corrects_and_replies_delta_c(momentum: float, divisor: float) -> None:
    hook = ScaffoldClient()
    plan = hook.plan(job(momentum), nn.Linear(1, 1), LocalPlan(x=np.zeros(1), y=np.zeros(1)))
    (term,) = plan.terms
    assert isinstance(term, ControlVariateCorrection)
    np.testing.assert_allclose(term.correction["w"].numpy(), [0.1, -0.1], rtol=1e-6)
    hook.metrics(job(momentum), TrainResult(10, 3, 0.0, 0.0), {})
    out = hook.reply(job(momentum), {"arrays": record(w=[-1.0, 2.0])}, record(w=[0.0, 0.0]))
    # Δc = (x - y) / (a η) - c, a = K = 3 without momentum, [K - ρ(1-ρ^K)/(1-ρ)]/(1-ρ) with
    expected = np.array([1.0, -2.0]) / (divisor * 0.5) - np.array([0.2, 0.0])
    np.testing.assert_allclose(values(out[DELTA_CV])["w"], expected, rtol=1e-5)
    assert set(out) == {"arrays", DELTA_CV}


def test_the_client_refuses_state_addressed_to_another_partition() -> None:
    with pytest.raises(ValueError, match="partition 1 reached partition 0"):
        ScaffoldClient().plan(job(0.0, owner=1), nn.Linear(1, 1),
                              LocalPlan(x=np.zeros(1), y=np.zeros(1)))  # fmt: skip


def test_the_server_updates_c_and_each_c_i_by_hand() -> None:
    # N = 4 clients; round 1 samples partitions 1 and 3, on nodes 10 and 30
    strategy = Scaffold(4, lambda rnd: [1, 3], fraction_evaluate=0.0)
    x = record(w=[0.0, 0.0])
    messages = list(strategy.configure_train(1, x, config(), NodeGrid([10, 30])))
    for msg in messages:
        owner = msg.content.config_records[OWNER]["partition"]
        assert owner == {10: 1, 30: 3}[msg.metadata.dst_node_id]
        assert np.array_equal(values(msg.content.array_records[SERVER_CV])["w"], [0, 0])
        assert np.array_equal(values(msg.content.array_records[CLIENT_CV])["w"], [0, 0])
    replies = [
        reply(30, record(w=[3.0, 4.0]), 3, **{DELTA_CV: record(w=[-0.4, 0.0])}),
        reply(10, record(w=[1.0, 2.0]), 1, **{DELTA_CV: record(w=[0.4, 0.8])}),
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    # weights: FedAvg weighted by num-examples (1 and 3)
    np.testing.assert_allclose(values(arrays)["w"], [2.5, 3.5])
    # c = 0 + (1/N) (Δc_1 + Δc_3); c_i = Δc_i
    np.testing.assert_allclose(strategy.shared["w"], [0.0, 0.2], atol=1e-7)
    np.testing.assert_allclose(strategy.clients[1]["w"], [0.4, 0.8])
    np.testing.assert_allclose(strategy.clients[3]["w"], [-0.4, 0.0])
    # round 2 samples partitions 0 and 1 (node 10 now holds partition 0 ... by the order)
    strategy.sampled = lambda rnd: [0, 1]
    sent = {
        m.metadata.dst_node_id: m
        for m in strategy.configure_train(2, arrays, config(), NodeGrid([20, 10]))
    }
    np.testing.assert_allclose(values(sent[10].content.array_records[CLIENT_CV])["w"], [0.4, 0.8])
    np.testing.assert_allclose(values(sent[20].content.array_records[CLIENT_CV])["w"], [0, 0])
    np.testing.assert_allclose(values(sent[20].content.array_records[SERVER_CV])["w"], [0, 0.2],
                               atol=1e-7)  # fmt: skip


def test_the_global_step_moves_by_server_lr() -> None:
    strategy = Scaffold(2, lambda rnd: [0, 1], server_lr=0.5, fraction_evaluate=0.0)
    x = record(w=[1.0, 1.0])
    strategy.configure_train(1, x, config(), NodeGrid([10, 11]))
    dc = {DELTA_CV: record(w=[0.0, 0.0])}
    replies = [reply(10, record(w=[3.0, 1.0]), **dc), reply(11, record(w=[1.0, 5.0]), **dc)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None  # x + 0.5 * (mean(y) - x) = (1, 1) + 0.5 * (1, 2)
    np.testing.assert_allclose(values(arrays)["w"], [1.5, 2.0])


def test_state_round_trips_through_tensors() -> None:
    strategy = Scaffold(2, lambda rnd: [0], fraction_evaluate=0.0)
    strategy.shared = {"w": np.array([1.0, 2.0], np.float32)}
    strategy.clients = {1: {"w": np.array([3.0, 4.0], np.float32)}}
    state = strategy.state_dict()
    assert isinstance(state["shared"]["w"], torch.Tensor)
    fresh = Scaffold(2, lambda rnd: [0], fraction_evaluate=0.0)
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.clients[1]["w"], [3.0, 4.0])
    assert fresh.shared["w"].dtype == np.float32


GLOBAL = record(w=np.zeros((2, 3)), b=np.zeros(3))
CONTRACT = ReplyContract(records=(DELTA_CV,))


@pytest.mark.parametrize(
    ("delta", "reason"),
    [
        (None, "missing_records"),
        (ArrayRecord(), "wrong_keys"),
        (record(b=np.zeros(3), w=np.zeros((2, 3))), "wrong_keys"),
        (record(w=np.zeros((3, 2)), b=np.zeros(3)), "wrong_shape"),
        (ArrayRecord({"w": Array(np.zeros((2, 3))), "b": Array(np.zeros(3))}), "wrong_dtype"),
        (record(w=np.full((2, 3), np.nan), b=np.zeros(3)), "non_finite"),
        (record(w=np.zeros((2, 3)), b=np.array([0, np.inf, 0])), "non_finite"),
    ],
)
def test_a_hostile_delta_c_is_dropped_with_its_reason(
    delta: ArrayRecord | None, reason: str
) -> None:
    good = reply(100, record(w=np.ones((2, 3)), b=np.ones(3)), **{DELTA_CV: GLOBAL})
    extra = {} if delta is None else {DELTA_CV: delta}
    bad = reply(101, record(w=np.ones((2, 3)), b=np.ones(3)), **extra)
    accepted, dropped, _ = screen_replies(
        [good, bad], GLOBAL, {100: 0, 101: 1}, records=frozenset({"arrays", "metrics", DELTA_CV}),
        contract=CONTRACT,
    )  # fmt: skip
    assert [m.metadata.src_node_id for m in accepted] == [100]
    assert dict(dropped) == {reason: 1}


def test_a_run_drops_a_client_sending_nan_delta_c_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = ScaffoldClient.reply

    def hostile(
        self: ScaffoldClient, job: ClientJob, records: dict, global_arrays: ArrayRecord
    ) -> dict:
        out = honest(self, job, records, global_arrays)
        if job.partition == 0:
            broken = {k: np.full_like(v, np.nan) for k, v in values(out[DELTA_CV]).items()}
            out[DELTA_CV] = to_record(broken)
        return out

    monkeypatch.setattr(ScaffoldClient, "reply", hostile)
    doc = run(scenario("scaffold", 2, train={"fraction_train": 1.0}), tmp_path)
    assert doc["status"] == "completed"
    for row in doc["rounds"]:
        assert row["dropped"] == {"non_finite": 1} and row["aggregated"] == 4


def test_resume_is_exact(tmp_path: Path) -> None:
    straight = assert_resume_is_exact("scaffold", tmp_path)
    assert all(row["aggregated"] == 3 for row in straight["rounds"])


def test_metrics_carry_no_extra_record_to_the_report(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(run(scenario("scaffold", 1), tmp_path)))
    assert doc["rounds"][0]["dropped"] == {}
