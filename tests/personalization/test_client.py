"""The personalization client hook: private layers stay on the client, each method
builds its personal model as its paper says, and the state carries between rounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedrobust.data import ClientData
from fedrobust.federation.client_hooks import ClientJob, LocalPlan
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.personalization.client import PERSONAL, PersonalizationHook
from fedrobust.personalization.methods import private_keys, train_head
from fedrobust.scenario import Scenario, parse_scenario
from fedrobust.train import local_train

SPEC = InputSpec((1, 8, 8), 4)


def _scenario(personalization: dict[str, Any], model: str = "cnn") -> Scenario:
    return parse_scenario({
        "name": "p",
        "data": {"dataset": "digits", "local_test_fraction": 0.2,
                 "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": model},
        "train": {"rounds": 3, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.1}},
        "personalization": personalization,
    })  # fmt: skip


def _data(seed: int = 0) -> ClientData:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), 12)
    x = (rng.random((48, 1, 8, 8)) * 0.2 + y[:, None, None, None] / 4).astype(np.float32)
    return ClientData(x_train=x, y_train=y, y_train_clean=y, x_val=x[:8], y_val=y[:8],
                      x_test=x[:8], y_test=y[:8])  # fmt: skip


def _job(
    sc: Scenario, rnd: int, weights: dict[str, torch.Tensor], evaluating: bool = False
) -> ClientJob:
    content = RecordDict({"arrays": ArrayRecord(weights)})
    return ClientJob(sc, SPEC, ConfigRecord({}), content, rnd, 0, seed=rnd, evaluating=evaluating)


Trained = tuple[torch.nn.Module, ArrayRecord, torch.nn.Module | None]


def _round(hook: PersonalizationHook, sc: Scenario, rnd: int, weights: dict[str, torch.Tensor],
           data: ClientData) -> Trained:  # fmt: skip
    """One training round through the hook as local_round drives it: the trained model,
    the weights it sends, the personal model."""
    model = build_model(sc.model, SPEC)
    model.load_state_dict(weights)
    job = _job(sc, rnd, weights)
    plan = hook.plan(job, model, LocalPlan(x=data.x_train, y=data.y_train))
    local_train(model, plan.x, plan.y, train=sc.train, num_classes=4, seed=rnd,
                plugins=plan.plugins())  # fmt: skip
    personal = hook.personal(job, model, data)
    sent = hook.reply(job, {"arrays": ArrayRecord(model.state_dict())}, ArrayRecord(weights))
    hook.load_state_dict(hook.state_dict())  # what local_round stores and hands back
    return model, sent["arrays"], personal  # type: ignore[return-value]


def _start(sc: Scenario, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_model(sc.model, SPEC).state_dict()


@pytest.mark.parametrize("method", ["fedper", "fedrep", "fedbn"])
def test_private_layers_leave_the_client_as_the_received_global_values(method: str) -> None:
    sc = _scenario({"method": method})
    hook = PersonalizationHook(sc.personalization)  # type: ignore[arg-type]
    weights = _start(sc)
    model, sent, _ = _round(hook, sc, 1, weights, _data())
    keys = private_keys(model, sc.personalization)  # type: ignore[arg-type]
    assert keys
    trained = model.state_dict()
    for key in sent.keys():
        got = torch.from_numpy(sent[key].numpy())
        if key in keys:
            assert torch.equal(got, weights[key]), key  # nothing of the private layer leaves
        else:
            assert torch.equal(got, trained[key]), key
    assert any(
        not torch.equal(trained[k], weights[k]) for k in keys if trained[k].is_floating_point()
    )
    state = hook.state_dict()[PERSONAL].to_torch_state_dict()  # type: ignore[union-attr]
    assert sorted(state) == sorted(keys)
    assert all(torch.equal(state[k], trained[k]) for k in keys)


def test_fedper_private_head_is_loaded_over_the_next_rounds_global_one() -> None:
    sc = _scenario({"method": "fedper"})
    hook = PersonalizationHook(sc.personalization)  # type: ignore[arg-type]
    data = _data()
    model, _, _ = _round(hook, sc, 1, _start(sc), data)
    head = {k: v.clone() for k, v in model.state_dict().items() if k in hook.keys(model)}
    received = _start(sc, seed=5)  # another global model: its head must be replaced
    evaluated = hook.personal(_job(sc, 2, received, evaluating=True), _loaded(sc, received), data)
    assert evaluated is not None
    state = evaluated.state_dict()
    for key, value in state.items():
        expected = head[key] if key in head else received[key]
        assert torch.equal(value, expected), key


def _loaded(sc: Scenario, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = build_model(sc.model, SPEC)
    model.load_state_dict(weights)
    return model


def test_fedrep_trains_the_head_with_the_body_frozen_then_the_body_with_the_head_frozen() -> None:
    sc = _scenario({"method": "fedrep", "head_epochs": 2})
    model = _loaded(sc, _start(sc))
    head = private_keys(model, sc.personalization)  # type: ignore[arg-type]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = _data()
    train_head(model, head, data.x_train, data.y_train, sc.train, 2, num_classes=4, seed=0, lr=0.1)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and changed <= set(head)  # the head step touches the head alone
    assert all(p.requires_grad for p in model.parameters())  # and unfreezes the body

    hook = PersonalizationHook(sc.personalization)  # type: ignore[arg-type]
    start = _start(sc)
    trained, sent, _ = _round(hook, sc, 1, start, data)
    state = hook.state_dict()[PERSONAL].to_torch_state_dict()  # type: ignore[union-attr]
    # the head kept is the one after the head step: the body's epochs left it frozen
    head_only = _loaded(sc, start)
    train_head(
        head_only, head, data.x_train, data.y_train, sc.train, 2, num_classes=4, seed=1 + 1, lr=0.1
    )  # fmt: skip  (the hook seeds the head step with seed + 1)
    assert all(torch.allclose(state[k], head_only.state_dict()[k]) for k in head)
    body = [k for k in sent.keys() if k not in head and trained.state_dict()[k].is_floating_point()]
    assert any(not torch.equal(torch.from_numpy(sent[k].numpy()), start[k]) for k in body)


def test_ditto_personal_model_is_pulled_towards_the_global_model() -> None:
    data = _data()
    distances = {}
    for strength in (0.0, 5.0):
        sc = _scenario({"method": "ditto", "lambda": strength, "personal_epochs": 2})
        hook = PersonalizationHook(sc.personalization)  # type: ignore[arg-type]
        start = _start(sc)
        model, sent, personal = _round(hook, sc, 1, start, data)
        assert personal is not None and personal is not model
        # the global path is untouched by ditto: the reply is the trained model
        assert all(
            torch.equal(torch.from_numpy(sent[k].numpy()), v) for k, v in model.state_dict().items()
        )
        distances[strength] = sum(
            float(torch.sum((p - start[k]) ** 2))
            for k, p in personal.state_dict().items() if p.is_floating_point()
        )  # fmt: skip
        state = hook.state_dict()[PERSONAL].to_torch_state_dict()  # type: ignore[union-attr]
        assert all(torch.equal(state[k], v) for k, v in personal.state_dict().items())
    assert distances[5.0] < 0.5 * distances[0.0]


def test_finetune_trains_a_copy_of_the_received_model_at_evaluation() -> None:
    sc = _scenario({"method": "finetune", "finetune_epochs": 2})
    hook = PersonalizationHook(sc.personalization)  # type: ignore[arg-type]
    weights = _start(sc)
    received = _loaded(sc, weights)
    personal = hook.personal(_job(sc, 3, weights, evaluating=True), received, _data())
    assert personal is not None and personal is not received
    assert all(torch.equal(v, weights[k]) for k, v in received.state_dict().items())
    assert any(not torch.equal(v, weights[k]) for k, v in personal.state_dict().items())
    assert hook.state_dict() == {}  # finetune keeps nothing between rounds


def test_fedbn_private_layers_are_the_normalisation_layers() -> None:
    sc = _scenario({"method": "fedbn"})
    model = build_model(sc.model, SPEC)
    keys = private_keys(model, sc.personalization)  # type: ignore[arg-type]
    norms = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, torch.nn.GroupNorm)
             for p in ("weight", "bias")}  # fmt: skip
    assert set(keys) == norms


def test_private_layers_that_do_not_exist_are_refused_naming_the_field() -> None:
    sc = _scenario({"method": "fedbn"}, model="mlp")
    with pytest.raises(ValueError, match="personalization.method"):
        private_keys(build_model(sc.model, SPEC), sc.personalization)  # type: ignore[arg-type]
    sc = _scenario({"method": "fedper", "head_layers": 5})
    with pytest.raises(ValueError, match="personalization.head_layers"):
        private_keys(build_model(sc.model, SPEC), sc.personalization)  # type: ignore[arg-type]


def test_fedrep_head_step_then_body_step_match_a_hand_computed_round() -> None:
    # one example, x = 1, label 0; logits = w_body * [h0, h1]; plain SGD, lr 0.5, one step each
    sc = parse_scenario({
        "name": "rep", "data": {"dataset": "digits", "local_test_fraction": 0.2},
        "train": {"batch_size": 1, "local_epochs": 1, "optimizer": {"name": "sgd", "lr": 0.5}},
        "personalization": {"method": "fedrep", "head_epochs": 1},
    })  # fmt: skip
    model = torch.nn.Sequential(
        torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 2, bias=False)
    )
    wb, h = 0.5, [0.2, -0.1]
    with torch.no_grad():
        model[0].weight.fill_(wb)
        model[1].weight.copy_(torch.tensor([[h[0]], [h[1]]]))
    x, y = np.ones((1, 1), np.float32), np.zeros(1, np.int64)
    hook = PersonalizationHook(sc.personalization)  # type: ignore[arg-type]
    job = ClientJob(sc, InputSpec((1,), 2), ConfigRecord({}), RecordDict({}), 1, 0, seed=0)
    plan = hook.plan(job, model, LocalPlan(x=x, y=y))
    local_train(
        model, plan.x, plan.y, train=sc.train, num_classes=2, seed=0, plugins=plan.plugins()
    )

    def softmax(z: list[float]) -> list[float]:
        e = [np.exp(v - max(z)) for v in z]
        return [v / sum(e) for v in e]

    p = softmax([h[0] * wb, h[1] * wb])  # head step: the body frozen at wb
    h = [h[j] - 0.5 * (p[j] - (j == 0)) * wb for j in range(2)]
    p = softmax([h[0] * wb, h[1] * wb])  # body step: the new head frozen
    wb = wb - 0.5 * sum((p[j] - (j == 0)) * h[j] for j in range(2))
    assert float(model[0].weight) == pytest.approx(wb, rel=1e-5)
    assert model[1].weight.flatten().tolist() == pytest.approx(h, rel=1e-5)
    assert not model[1].weight.requires_grad  # frozen for the body's epochs...
    hook.personal(job, model, ClientData(x, y, y, x, y, x, y))
    assert model[1].weight.requires_grad  # ...and free again once the round is over
