"""Client momentum (``train.client_momentum``): the bias-corrected momentum a client sends,
its state between rounds, what it refuses, and that an attacker's reply is not damped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fedrobust.apps.server.loop import run_federation
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedrobust.errors import FedrobustError
from fedrobust.federation.client_hooks import ClientJob
from fedrobust.federation.records import Record
from fedrobust.federation.registry import CLIENT_HOOKS, client_hooks
from fedrobust.models.registry import InputSpec
from fedrobust.robust.client import MaliciousHook
from fedrobust.robust.malicious import malicious_clients
from fedrobust.robust.momentum import MOMENTUM, MOMENTUM_ROUNDS, ClientMomentumHook
from fedrobust.robust.poisoning import poison_update
from fedrobust.robust.updates import apply_delta, flat_delta
from fedrobust.sampling import participation_counts
from fedrobust.scenario import Scenario, parse_scenario
from tests.grid import InProcessGrid

LOCAL_TEST = {"dataset": "digits", "local_test_fraction": 0.2}


def scenario(**sections: Any) -> Scenario:
    train = {"client_momentum": 0.5, **sections.pop("train", {})}
    doc = {"name": "momentum", "data": {"dataset": "digits"}, "train": train, **sections}
    return parse_scenario(doc)


def job(sc: Scenario, rnd: int, partition: int = 0) -> ClientJob:
    return ClientJob(sc, InputSpec((1, 8, 8), 10), ConfigRecord(), RecordDict(), rnd, partition, 7)


def weights(w: list[float], b: float, steps: int = 0) -> ArrayRecord:
    """A tiny model: a float32 weight, a float64 bias and an integer buffer."""
    return ArrayRecord(
        {
            "w": torch.tensor(w, dtype=torch.float32),
            "b": torch.tensor([b], dtype=torch.float64),
            "num_batches_tracked": torch.tensor(steps, dtype=torch.int64),  # 0-d, as torch's
        }
    )


def one_round(
    sc: Scenario, state: dict[str, Record], rnd: int, sent: ArrayRecord, trained: ArrayRecord
) -> tuple[ArrayRecord, dict[str, Record]]:
    """A local round's momentum as ``local_round`` runs it: a fresh hook, its state loaded,
    the reply, the state kept."""
    hook = ClientMomentumHook.create(sc)
    assert hook is not None
    hook.load_state_dict(state)
    records = hook.reply(job(sc, rnd), {"arrays": trained}, sent)
    return records["arrays"], hook.state_dict()  # type: ignore[return-value]


def test_three_rounds_send_the_bias_corrected_momentum_computed_by_hand() -> None:
    sc, state = scenario(), {}
    # beta 0.5; m_k = 0.5 m_{k-1} + 0.5 Δ_k from m_0 = 0; sent: m_k / (1 - 0.5^k)
    # round 1: Δ = (1, 2 | 1)   m = (0.5, 1 | 0.5)     sent Δ itself
    reply, state = one_round(sc, state, 1, weights([0, 0], 0), weights([1, 2], 1))
    np.testing.assert_allclose(reply["w"].numpy(), [1, 2], rtol=0, atol=0)
    np.testing.assert_allclose(reply["b"].numpy(), [1])
    # round 2: Δ = (3, -1 | -2) m = (1.75, 0 | -0.75)  sent m / 0.75 = (7/3, 0 | -1)
    reply, state = one_round(sc, state, 2, weights([1, 1], 2), weights([4, 0], 0))
    np.testing.assert_allclose(reply["w"].numpy(), np.float32([1 + 7 / 3, 1]), rtol=1e-7)
    np.testing.assert_allclose(reply["b"].numpy(), [2 - 1], rtol=1e-15)
    # round 3: Δ = (0, 4 | 0.5) m = (0.875, 2 | -0.125) sent m / 0.875 = (1, 16/7 | -1/7):
    # the updates weighted 1/7, 2/7, 4/7
    reply, state = one_round(sc, state, 3, weights([0, 0], 0), weights([0, 4], 0.5))
    np.testing.assert_allclose(reply["w"].numpy(), np.float32([1, 16 / 7]), rtol=1e-7)
    np.testing.assert_allclose(reply["b"].numpy(), [-1 / 7], rtol=1e-15)
    assert reply["w"].numpy().dtype == np.float32 and reply["b"].numpy().dtype == np.float64
    assert state[MOMENTUM_ROUNDS]["rounds"] == 3  # type: ignore[index]
    np.testing.assert_allclose(state[MOMENTUM]["w"].numpy(), [0.875, 2])  # type: ignore[index]


def test_integer_buffers_are_sent_as_trained_and_kept_out_of_the_momentum() -> None:
    sc = scenario()
    reply, state = one_round(sc, {}, 1, weights([0, 0], 0, steps=3), weights([1, 1], 0, steps=9))
    _, state = one_round(sc, state, 2, weights([1, 1], 0, steps=9), weights([5, 5], 0, steps=20))
    reply, _ = one_round(sc, state, 3, weights([0, 0], 0, steps=20), weights([0, 0], 0, steps=31))
    steps = reply["num_batches_tracked"].numpy()
    assert steps.dtype == np.int64 and steps.shape == () and int(steps) == 31
    assert set(state[MOMENTUM].keys()) == {"w", "b"}  # type: ignore[union-attr]


def test_the_state_round_trips_and_a_client_without_state_starts_at_zero() -> None:
    sc = scenario()
    _, state = one_round(sc, {}, 1, weights([0, 0], 0), weights([2, 4], 1))
    back = ClientMomentumHook(0.5)
    back.load_state_dict(state)
    assert back.rounds == 1 and back.state_dict().keys() == state.keys()
    np.testing.assert_array_equal(back.momentum["w"], [1, 2])
    np.testing.assert_array_equal(back.state_dict()[MOMENTUM]["b"].numpy(), [0.5])  # type: ignore[index]
    fresh = ClientMomentumHook(0.5)
    fresh.load_state_dict({})
    assert fresh.rounds == 0 and fresh.state_dict() == {}
    assert ClientMomentumHook.create(parse_scenario({"name": "off"})) is None


@pytest.mark.parametrize(
    "sections",
    [
        {"privacy": {"dp": {"mode": "client", "noise_multiplier": 0.5, "clipping_norm": 1.0}}},
        {"strategy": {"name": "scaffold"}},
        {"strategy": {"name": "feddyn"}},
        {"strategy": {"name": "fednova"}},
        {"personalization": {"method": "fedper"}, "data": LOCAL_TEST},
        {"personalization": {"method": "fedbn"}, "data": LOCAL_TEST},
    ],
    ids=["client_dp", "scaffold", "feddyn", "fednova", "fedper", "fedbn"],
)  # fmt: skip
def test_what_reads_each_reply_as_this_rounds_update_is_refused(sections: dict) -> None:
    with pytest.raises(FedrobustError) as info:
        scenario(**sections)
    assert "train.client_momentum" in str(info.value)


@pytest.mark.parametrize(
    "sections",
    [
        {"privacy": {"secure_aggregation": {}}},
        {"privacy": {"dp": {"mode": "sample", "noise_multiplier": 1.0}}},
        {"personalization": {"method": "ditto"}, "data": LOCAL_TEST},
        {"defense": {"name": "centered_clip"}, "attack": {"kind": "alie", "count": 2}},
    ],
    ids=["secagg", "dp_sgd", "ditto", "centered_clip_alie"],
)  # fmt: skip
def test_secagg_dp_sgd_ditto_and_defences_compose(sections: dict) -> None:
    assert scenario(**sections).train.client_momentum == 0.5


def test_a_run_with_client_momentum_refuses_to_resume(tmp_path: Path) -> None:
    from fedrobust.simulation import check_resumable

    with pytest.raises(FedrobustError, match="client_momentum cannot resume"):
        check_resumable(tmp_path, scenario())


def test_momentum_replies_before_the_malicious_client() -> None:
    assert CLIENT_HOOKS.index(ClientMomentumHook) < CLIENT_HOOKS.index(MaliciousHook)


def test_a_sign_flipper_sends_exactly_its_flipped_update_undamped() -> None:
    sc = scenario(attack={"kind": "sign_flip", "count": 1, "scale": 3.0})
    bad = next(iter(malicious_clients(sc)))
    good = next(p for p in range(10) if p != bad)
    states: dict[int, dict[str, Record]] = {bad: {}, good: {}}
    for rnd, (sent, trained) in enumerate(
        [(weights([0, 0], 0), weights([1, 2], 1)), (weights([1, 1], 0), weights([3, 0], 2))], 1
    ):
        for pid in (bad, good):
            hooks = client_hooks(sc)
            for hook in hooks:
                hook.load_state_dict(states[pid])
            records: dict[str, Record] = {"arrays": trained}
            the_job = job(sc, rnd, pid)
            for hook in hooks:
                records = hook.reply(the_job, records, sent)
            for hook in hooks:
                states[pid].update(hook.state_dict())
            got = flat_delta(records["arrays"], sent)  # type: ignore[arg-type]
            raw = flat_delta(trained, sent)
            if pid == bad:  # the raw update, flipped and scaled: never averaged
                flipped = flat_delta(apply_delta(sent, poison_update(sc.attack, raw, 7)), sent)
                np.testing.assert_array_equal(got, flipped)
                np.testing.assert_array_equal(got, -3.0 * raw)
            elif rnd == 2:  # the honest client sends its momentum: (Δ1 + 2 Δ2) / 3
                np.testing.assert_allclose(got, (np.array([1, 2, 1]) + 2 * raw) / 3)
    assert states[bad] == {} and states[good][MOMENTUM_ROUNDS]["rounds"] == 2  # type: ignore[index]


@pytest.mark.usefixtures("server_identity")
def test_a_federation_with_client_momentum_trains_and_each_client_keeps_its_momentum(
    tmp_path: Path,
) -> None:
    sc = parse_scenario(
        {
            "name": "momentum_run",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 5}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"rounds": 3, "batch_size": 64, "fraction_train": 0.6,
                      "optimizer": {"name": "sgd", "lr": 0.1}, "client_momentum": 0.5},
            "defense": {"name": "median"},
        }
    )  # fmt: skip
    grid = InProcessGrid()
    run_federation(grid, sc, tmp_path)  # type: ignore[arg-type]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["status"] == "completed" and len(doc["rounds"]) == 3
    assert all(np.isfinite(row["accuracy"]) for row in doc["rounds"])
    assert doc["rounds"][-1]["accuracy"] > doc["initial"]["accuracy"]
    counts = participation_counts(sc)
    assert min(counts) < max(counts)  # a client not sampled keeps its momentum as it was
    for pid, count in enumerate(counts):
        state = grid.contexts[100 + pid].state
        if count == 0:
            assert MOMENTUM not in state
            continue
        assert state.config_records[MOMENTUM_ROUNDS]["rounds"] == count
        momentum = state.array_records[MOMENTUM]
        assert momentum and all(np.isfinite(a.numpy()).all() for a in momentum.values())
