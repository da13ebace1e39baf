"""FedDyn: the client's linear and quadratic terms, the server's h, h_k and θ by hand on
a two-parameter model; exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, RecordDict
from torch import nn

from fedrobust.federation.client_hooks import ClientJob, LocalPlan
from fedrobust.models.registry import InputSpec
from fedrobust.strategy.client import DynamicRegularizer, FedDynClient
from fedrobust.strategy.drift import OWNER
from fedrobust.strategy.feddyn import CLIENT_STATE, FedDyn
from fedrobust.train import local_train
from fedrobust.train.config import OptimizerConfig, TrainConfig
from tests.strategy.helpers import (
    NodeGrid,
    assert_resume_is_exact,
    config,
    record,
    reply,
    scenario,
    values,
)

pytestmark = pytest.mark.usefixtures("server_identity")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def test_two_local_steps_with_the_dynamic_regularizer_by_hand() -> None:
    # logits = W x, W (2, 1) from 0; one example x = 1 of class 0; two epochs: two steps
    alpha, lr = 0.5, 0.5
    h = np.array([[0.2], [0.1]])
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)
    train = TrainConfig(
        batch_size=1, local_epochs=2, optimizer=OptimizerConfig(name="sgd", lr=lr, momentum=0)
    )
    local_train(
        model, np.ones((1, 1), np.float32), np.zeros(1, np.int64), train=train, num_classes=2,
        seed=0, plugins=(DynamicRegularizer(alpha, {"weight": h}),),
    )  # fmt: skip
    # ∇ [L(W) - <h, W> + α/2 ||W - W0||²] = (p - e_0) x - h + α (W - W0)
    onehot = np.array([[1.0], [0.0]])
    w = np.zeros((2, 1))
    for _ in range(2):
        grad = softmax(w[:, 0])[:, None] - onehot - h + alpha * (w - 0.0)
        w = w - lr * grad
    np.testing.assert_allclose(model.weight.detach().numpy(), w, rtol=1e-5)


def test_the_client_hook_adds_the_term_with_the_h_k_it_received() -> None:
    sc = scenario("feddyn", 1, strategy={"name": "feddyn", "alpha": 0.25})
    content = RecordDict(
        {CLIENT_STATE: record(w=[1.0, 2.0]), OWNER: ConfigRecord({"partition": 2})}
    )
    job = ClientJob(sc, InputSpec(shape=(1,), num_classes=2), ConfigRecord(), content, 1, 2, 0)
    hook = FedDynClient.create(sc)
    assert hook is not None and FedDynClient.create(scenario("fedavg", 1)) is None
    plan = hook.plan(job, nn.Linear(1, 1), LocalPlan(x=np.zeros(1), y=np.zeros(1)))
    (term,) = plan.terms
    assert isinstance(term, DynamicRegularizer) and term.alpha == 0.25
    np.testing.assert_allclose(term.h["w"].numpy(), [1.0, 2.0])


def test_the_server_updates_h_h_k_and_theta_by_hand() -> None:
    # m = 4 clients; partitions 0 and 2 on nodes 10 and 12; α = 0.5; θ^{t-1} = (1, 1)
    strategy = FedDyn(4, lambda rnd: [0, 2], alpha=0.5, fraction_evaluate=0.0)
    x = record(w=[1.0, 1.0])
    messages = list(strategy.configure_train(1, x, config(), NodeGrid([10, 12])))
    assert all(
        np.array_equal(values(m.content.array_records[CLIENT_STATE])["w"], [0, 0]) for m in messages
    )
    replies = [reply(10, record(w=[2.0, 1.0]), 1), reply(12, record(w=[1.0, 3.0]), 1)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    # h = 0 - α (1/m) Σ (θ_k - θ) = -0.125 * ((1, 0) + (0, 2)) = (-0.125, -0.25)
    np.testing.assert_allclose(strategy.shared["w"], [-0.125, -0.25])
    # θ = mean θ_k - h / α = (1.5, 2) + (0.25, 0.5)
    np.testing.assert_allclose(values(arrays)["w"], [1.75, 2.5])
    # h_k = 0 - α (θ_k - θ)
    np.testing.assert_allclose(strategy.clients[0]["w"], [-0.5, 0.0])
    np.testing.assert_allclose(strategy.clients[2]["w"], [0.0, -1.0])
    # the next round sends each client its own h_k
    strategy.sampled = lambda rnd: [1, 2]
    messages = strategy.configure_train(2, arrays, config(), NodeGrid([11, 12]))
    sent = {m.metadata.dst_node_id: m for m in messages}
    np.testing.assert_allclose(values(sent[12].content.array_records[CLIENT_STATE])["w"], [0, -1])
    np.testing.assert_allclose(values(sent[11].content.array_records[CLIENT_STATE])["w"], [0, 0])
    assert sent[11].content.config_records[OWNER]["partition"] == 1


def test_alpha_must_be_positive() -> None:
    with pytest.raises(ValueError, match="alpha > 0"):
        FedDyn(2, lambda rnd: [0], alpha=0.0)


def test_resume_is_exact(tmp_path: Path) -> None:
    assert_resume_is_exact("feddyn", tmp_path, strategy={"name": "feddyn", "alpha": 0.1})
