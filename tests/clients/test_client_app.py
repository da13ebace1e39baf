"""The ClientApp keeps each client's DP ledger across rounds and refuses past its budget."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fedrobust.apps.clients.client_app import train
from flwr.app import ArrayRecord, Context, Message, MessageType, Metadata, RecordDict
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from opacus.accountants import RDPAccountant

from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.privacy.client_dp import CLIENT_CLIPPING, UNIFORM_WEIGHT, client_dp_mod
from fedrobust.privacy.ledger import sample_rate, steps_per_epoch
from fedrobust.recipe import recipe_config
from fedrobust.scenario import Scenario, parse_scenario

NODE = 5


def scenario(**dp: object) -> Scenario:
    return parse_scenario(
        {
            "name": "c",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"batch_size": 32},
            "privacy": {"dp": {"mode": "sample", "noise_multiplier": 1.1, **dp}},
        }
    )


def context() -> Context:
    return Context(
        run_id=1, node_id=NODE, node_config={"partition-id": 0, "num-partitions": 3},
        state=RecordDict(), run_config={},
    )  # fmt: skip


def train_message(sc: Scenario, rnd: int, history: list[dict] | None = None) -> Message:
    spec = build_federation(sc.data, sc.seed).spec
    model = build_model(sc.model, spec)
    config = recipe_config(sc, spec)
    config.update(
        {"server-round": rnd, "dp-noise-multiplier": 1.1, "dp-history": json.dumps(history or [])}
    )
    md = Metadata(
        run_id=1, message_id=f"m{rnd}", src_node_id=0, dst_node_id=NODE, reply_to_message_id="",
        group_id=str(rnd), created_at=time.time(), ttl=60, message_type=MessageType.TRAIN,
    )  # fmt: skip
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": config})
    return Message(metadata=md, content=content)


def opacus_epsilon(steps: int, n: int) -> float:
    acc = RDPAccountant()
    acc.history = [(1.1, sample_rate(n, 32), steps)]
    return acc.get_epsilon(delta=1e-5)


def test_epsilon_is_cumulative_across_rounds_and_equals_opacus() -> None:
    sc, ctx = scenario(), context()
    n = len(build_federation(sc.data, sc.seed).clients[0].y_train)
    per_round = steps_per_epoch(n, 32, True)
    seen = []
    for rnd in (1, 2, 3):  # a fresh call each round, as Flower rebuilds the ClientApp
        metrics = train(train_message(sc, rnd), ctx).content.metric_records["metrics"]
        assert metrics["dp-steps"] == per_round
        seen.append(float(metrics["epsilon"]))
        assert seen[-1] == pytest.approx(opacus_epsilon(rnd * per_round, n), rel=1e-9)
    assert seen[0] < seen[1] < seen[2]


def test_a_restarted_client_continues_from_the_server_ledger() -> None:
    sc = scenario()
    first = train(train_message(sc, 1), context()).content.metric_records["metrics"]
    entry = {"noise_multiplier": 1.1, "sample_rate": first["dp-sample-rate"],
             "steps": first["dp-steps"], "round": 1}  # fmt: skip
    fresh = context()  # state lost (e.g. the run was resumed in a new simulation)
    second = train(train_message(sc, 2, [entry]), fresh).content.metric_records["metrics"]
    n = len(build_federation(sc.data, sc.seed).clients[0].y_train)
    assert float(second["epsilon"]) == pytest.approx(
        opacus_epsilon(2 * int(first["dp-steps"]), n), rel=1e-9
    )


def test_a_client_past_its_budget_refuses_to_train() -> None:
    sc = scenario()
    n = len(build_federation(sc.data, sc.seed).clients[0].y_train)
    per_round = steps_per_epoch(n, 32, True)
    budget = (opacus_epsilon(2 * per_round, n) + opacus_epsilon(3 * per_round, n)) / 2
    sc, ctx = scenario(epsilon_budget=budget), context()
    for rnd in (1, 2):
        assert "metrics" in train(train_message(sc, rnd), ctx).content.metric_records
    reply = train(train_message(sc, 3), ctx)
    status = reply.content.config_records["status"]
    assert status["refused"] == "budget_exhausted"
    assert float(status["epsilon"]) == pytest.approx(opacus_epsilon(2 * per_round, n))
    assert float(status["epsilon-next"]) > budget
    assert not reply.content.array_records


def test_user_level_dp_clips_the_update_on_the_client_and_weights_it_one() -> None:
    sc = parse_scenario(
        {
            "name": "u",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"optimizer": {"lr": 0.5}},
            "privacy": {"dp": {"mode": "client", "noise_multiplier": 1.0, "clipping_norm": 0.1}},
        }
    )
    msg = train_message(sc, 1)
    config = msg.content.config_records["config"]
    config[CLIENT_CLIPPING] = "fixed"
    config[KEY_CLIPPING_NORM] = 0.1
    sent = msg.content.array_records["arrays"].to_numpy_ndarrays()
    reply = client_dp_mod(msg, context(), train)
    got = reply.content.array_records["arrays"].to_numpy_ndarrays()
    norm = np.sqrt(sum(float(((g - s) ** 2).sum()) for g, s in zip(got, sent, strict=True)))
    assert norm == pytest.approx(0.1, rel=1e-4)  # lr 0.5 moves far more: clipped to 0.1
    assert reply.content.metric_records["metrics"][UNIFORM_WEIGHT] == 1


def test_a_node_with_a_data_path_trains_and_reports_on_its_own_file(tmp_path) -> None:
    from fedrobust.apps.clients.client_app import query

    sc = parse_scenario(
        {"name": "edge", "data": {"dataset": "digits", "val_fraction": 0.1,
                                  "partition": {"kind": "iid", "num_clients": 3}},
         "model": {"name": "mlp", "hidden": [16]}, "train": {"batch_size": 16}}
    )  # fmt: skip
    fed = build_federation(sc.data, sc.seed)
    own = fed.clients[2]  # another client's examples: not what partition 0 would load
    path = tmp_path / "device.npz"
    np.savez(path, x=(own.x_train[:50] * 255).round().astype(np.uint8), y=own.y_train[:50])
    ctx = Context(
        run_id=1, node_id=NODE, state=RecordDict(), run_config={},
        node_config={"partition-id": 0, "num-partitions": 3, "data-path": str(path)},
    )  # fmt: skip
    msg = train_message(sc, 1)
    metrics = train(msg, ctx).content.metric_records["metrics"]
    assert metrics["num-examples"] == 45  # 50 examples, 10 % held out for validation
    md = Metadata(
        run_id=1, message_id="q", src_node_id=0, dst_node_id=NODE, reply_to_message_id="",
        group_id="0", created_at=time.time(), ttl=60, message_type=MessageType.QUERY,
    )  # fmt: skip
    ask = Message(metadata=md, content=RecordDict({"config": recipe_config(sc, fed.spec)}))
    info = query(ask, ctx).content.config_records["info"]
    assert info["partition-id"] == 0 and info["num-train"] == 45
    assert len(fed.clients[0].y_train) != 45  # so the count came from the file


def test_a_node_whose_file_does_not_fit_the_federation_fails_naming_the_file(tmp_path) -> None:
    from fedrobust.errors import FedrobustError

    sc = scenario()
    path = tmp_path / "wrong.npz"
    np.savez(path, x=np.zeros((10, 1, 28, 28), np.float32), y=np.zeros(10, np.int64))
    ctx = Context(
        run_id=1, node_id=NODE, state=RecordDict(), run_config={},
        node_config={"partition-id": 0, "num-partitions": 3, "data-path": str(path)},
    )  # fmt: skip
    with pytest.raises(FedrobustError, match="wrong.npz: x samples have shape"):
        train(train_message(sc, 1), ctx)
