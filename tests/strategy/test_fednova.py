"""FedNova: a_i with and without momentum (checked against torch's SGD), the client's
normalised weights, the server's τ_eff rescaling by hand; exact resume; a missing or bad
``fednova-a`` is dropped; SecAgg+ gives the plain round's model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedrobust.federation.client_hooks import ClientJob
from fedrobust.federation.screening import ReplyContract, screen_replies
from fedrobust.models.registry import InputSpec
from fedrobust.strategy.client import FedNovaClient
from fedrobust.strategy.fednova import NORMALIZER, FedNova, normalizer
from fedrobust.train import TrainResult
from tests.strategy.helpers import (
    NodeGrid,
    assert_resume_is_exact,
    config,
    final_model,
    record,
    reply,
    run,
    scenario,
    values,
)

pytestmark = pytest.mark.usefixtures("server_identity")


def test_a_without_momentum_is_the_step_count() -> None:
    assert normalizer(3) == 3.0 and normalizer(1, 0.0) == 1.0


def test_a_with_momentum_by_hand() -> None:
    # [3 - 0.9 (1 - 0.9^3) / 0.1] / 0.1 = (3 - 2.439) / 0.1
    assert normalizer(3, 0.9) == pytest.approx(5.61)
    assert normalizer(1, 0.9) == pytest.approx(1.0)  # one step: no momentum built up yet


@pytest.mark.parametrize(("steps", "momentum"), [(1, 0.5), (4, 0.9), (7, 0.3)])
def test_a_is_what_torch_sgd_moves_on_a_constant_gradient(steps: int, momentum: float) -> None:
    w = torch.zeros(2, requires_grad=True)
    g = torch.tensor([1.0, -2.0])
    opt = torch.optim.SGD([w], lr=0.1, momentum=momentum)
    for _ in range(steps):
        opt.zero_grad()
        (w * g).sum().backward()
        opt.step()
    moved = -w.detach().numpy() / (0.1 * g.numpy())
    np.testing.assert_allclose(moved, normalizer(steps, momentum), rtol=1e-5)


def test_a_rejects_no_steps() -> None:
    with pytest.raises(ValueError, match="at least one local step"):
        normalizer(0)


def test_the_client_replies_normalised_weights_and_a() -> None:
    sc = scenario("fednova", 1, train={"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}})
    job = ClientJob(sc, InputSpec(shape=(1,), num_classes=2), ConfigRecord(), RecordDict(), 1, 0, 0)
    hook = FedNovaClient.create(sc)
    assert hook is not None
    metrics = hook.metrics(job, TrainResult(10, 3, 0.0, 0.0), {"num-examples": 10})
    assert metrics[NORMALIZER] == pytest.approx(5.61)
    out = hook.reply(job, {"arrays": record(w=[1.0, 12.22])}, record(w=[1.0, 1.0]))
    # x + (y - x) / a
    np.testing.assert_allclose(values(out["arrays"])["w"], [1.0, 3.0], rtol=1e-6)
    adam = scenario("fednova", 1, train={"optimizer": {"name": "adam", "lr": 0.01}})
    job = ClientJob(adam, job.spec, job.config, job.content, 1, 0, 0)
    assert hook.metrics(job, TrainResult(10, 3, 0.0, 0.0), {})[NORMALIZER] == 3.0


def test_the_server_rescales_by_tau_eff_by_hand() -> None:
    strategy = FedNova(fraction_evaluate=0.0)
    x = record(w=[1.0, 1.0])
    strategy.configure_train(1, x, config(), NodeGrid([10, 11]))
    replies = [
        reply(10, record(w=[2.0, 1.0]), 1, {NORMALIZER: 2.0}),
        reply(11, record(w=[1.0, 3.0]), 3, {NORMALIZER: 4.0}),
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None and metrics is not None
    # p = (1/4, 3/4); Σ p (y' - x) = (0.25, 1.5); τ_eff = 0.5 + 3 = 3.5
    np.testing.assert_allclose(values(arrays)["w"], [1.0 + 3.5 * 0.25, 1.0 + 3.5 * 1.5])
    assert NORMALIZER not in metrics


def test_equal_local_work_is_fedavg() -> None:
    # every a_i = a: x + a * mean((y_i - x) / a) = mean(y_i)
    strategy = FedNova(fraction_evaluate=0.0)
    x = record(w=[0.0, 0.0])
    strategy.configure_train(1, x, config(), NodeGrid([10, 11]))
    a = 5.61
    ys = [np.array([1.0, 2.0]), np.array([3.0, -1.0])]
    replies = [reply(10 + i, record(w=y / a), 2, {NORMALIZER: a}) for i, y in enumerate(ys)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    np.testing.assert_allclose(values(arrays)["w"], (ys[0] + ys[1]) / 2, rtol=1e-6)


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), -1.0, 0.0, [3.0]])
def test_a_bad_a_is_dropped_by_screening(bad: object) -> None:
    arrays = record(w=np.ones(3))
    good = reply(100, arrays, metrics={NORMALIZER: 3.0})
    hostile = reply(101, arrays, metrics={} if bad is None else {NORMALIZER: bad})
    accepted, dropped, _ = screen_replies(
        [good, hostile], record(w=np.zeros(3)), {100: 0, 101: 1},
        contract=ReplyContract(metrics=(NORMALIZER,)),
    )  # fmt: skip
    assert [m.metadata.src_node_id for m in accepted] == [100]
    assert dict(dropped) == {"bad_metrics": 1}


def test_the_server_makes_no_aggregate_from_a_bad_a_it_could_not_drop() -> None:
    # under SecAgg+ the masked sum already holds the client's update
    strategy = FedNova(fraction_evaluate=0.0)
    strategy.configure_train(1, record(w=[0.0]), config(), NodeGrid([10, 11]))
    replies = [reply(10, record(w=[1.0]), metrics={NORMALIZER: 2.0}),
               reply(11, record(w=[1.0]), metrics={NORMALIZER: -2.0})]  # fmt: skip
    assert strategy.aggregate_train(1, replies) == (None, None)


def client_1_sends_a_negative_a(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client 1 reports ``-a_i``: a hostile normaliser."""
    honest = FedNovaClient.metrics

    def hostile(self: FedNovaClient, job: ClientJob, result: TrainResult, metrics: dict) -> dict:
        out = honest(self, job, result, metrics)
        return {**out, NORMALIZER: -out[NORMALIZER]} if job.partition == 1 else out

    monkeypatch.setattr(FedNovaClient, "metrics", hostile)


def test_a_run_drops_a_client_with_a_negative_a_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_1_sends_a_negative_a(monkeypatch)
    doc = run(scenario("fednova", 2, train={"fraction_train": 1.0}), tmp_path)
    assert doc["status"] == "completed"
    assert all(r["dropped"] == {"bad_metrics": 1} and r["aggregated"] == 4 for r in doc["rounds"])


def test_under_secagg_a_client_with_a_negative_a_drops_out_before_unmasking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_1_sends_a_negative_a(monkeypatch)
    secure = {"secure_aggregation": {"num_shares": 5, "reconstruction_threshold": 3}}
    doc = run(scenario("fednova", 1, train={"fraction_train": 1.0}, privacy=secure), tmp_path)
    row = doc["rounds"][0]
    assert row["secure_aggregation"]["failure"] is None and row["aggregated"] == 4
    assert row["dropped"] == {"bad_metrics": 1}


def test_resume_is_exact(tmp_path: Path) -> None:
    assert_resume_is_exact("fednova", tmp_path)


def test_under_secagg_the_model_is_the_plain_rounds_up_to_quantisation(tmp_path: Path) -> None:
    secure = {"secure_aggregation": {"num_shares": 5, "reconstruction_threshold": 3}}
    plain = run(scenario("fednova", 2, train={"fraction_train": 1.0}), tmp_path / "plain")
    masked = run(
        scenario("fednova", 2, train={"fraction_train": 1.0}, privacy=secure), tmp_path / "sa"
    )
    for row in masked["rounds"]:
        assert row["secure_aggregation"]["failure"] is None and row["aggregated"] == 5
    a, b = final_model(tmp_path / "plain"), final_model(tmp_path / "sa")
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert 0 < gap < 1e-3  # masked and encoded in fixed point, but the same rule
    assert [r["accuracy"] for r in masked["rounds"]] == pytest.approx(
        [r["accuracy"] for r in plain["rounds"]], abs=0.02
    )
    assert json.loads((tmp_path / "sa" / "metrics.json").read_text())["status"] == "completed"


def test_replies_keep_their_records_for_the_strategy() -> None:
    from fedrobust.federation.records import for_strategy

    msg = reply(10, record(w=[1.0]), metrics={NORMALIZER: 2.0, "train-loss": 0.3})
    msg.content["other"] = ArrayRecord()
    kept = for_strategy(msg, FedNova(fraction_evaluate=0.0))
    assert set(kept.content.keys()) == {"arrays", "metrics"}
    assert dict(kept.content.metric_records["metrics"]) == {"num-examples": 10, NORMALIZER: 2.0}
