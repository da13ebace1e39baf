"""Each attack changes the data or the update as specified."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord

from fedrobust.errors import FedrobustError
from fedrobust.robust.collusion import alie, alie_z, colluding_update, ipm, minmax, round_alie_z
from fedrobust.robust.config import AttackConfig
from fedrobust.robust.malicious import attacking, malicious_clients
from fedrobust.robust.poisoning import (
    backdoor_data,
    backdoor_success,
    check_classes,
    flip_labels,
    poison_data,
    poison_update,
    stamp_trigger,
)
from fedrobust.robust.updates import apply_delta, flat_delta
from fedrobust.scenario import parse_scenario


def attack(**options: object) -> AttackConfig:
    return AttackConfig(**options)  # type: ignore[arg-type]


def test_label_flip_maps_y_to_k_minus_1_minus_y_or_the_given_map() -> None:
    y = np.array([0, 1, 2, 9])
    assert flip_labels(attack(kind="label_flip"), y, 10).tolist() == [9, 8, 7, 0]
    mapped = flip_labels(attack(kind="label_flip", flip_map={1: 7, 2: 1}), y, 10)
    assert mapped.tolist() == [0, 7, 1, 9]


def test_backdoor_stamps_and_relabels_exactly_the_poison_fraction() -> None:
    cfg = attack(kind="backdoor", target_class=3, trigger_size=2, poison_fraction=0.25)
    x = np.zeros((40, 1, 8, 8), np.float32)
    y = np.full(40, 7)
    px, py = backdoor_data(cfg, x, y, seed=1)
    stamped = (px[:, 0, -2:, -2:] == 1.0).all(axis=(1, 2))
    assert stamped.sum() == 10
    assert (py[stamped] == 3).all() and (py[~stamped] == 7).all()
    assert (px[:, :, :-2, :] == 0).all()  # nothing outside the trigger changes
    assert x.max() == 0  # the client's own arrays are left alone
    flat = stamp_trigger(cfg, np.zeros((2, 5), np.float32))
    assert flat.tolist() == [[0, 0, 0, 1, 1]] * 2


def test_update_attacks_leave_the_data_alone() -> None:
    x, y = np.ones((4, 2)), np.arange(4)
    for kind in ("sign_flip", "gaussian", "scaling", "alie"):
        px, py = poison_data(attack(kind=kind), x, y, 10, 0)
        assert px is x and py is y


def test_update_poisoning() -> None:
    delta = np.array([1.0, -2.0, 0.5])
    assert poison_update(attack(kind="sign_flip"), delta, 0) == pytest.approx(-delta)
    assert poison_update(attack(kind="sign_flip", scale=4), delta, 0) == pytest.approx(-4 * delta)
    assert poison_update(attack(kind="scaling"), delta, 0) == pytest.approx(10 * delta)
    assert poison_update(attack(kind="backdoor"), delta, 0) == pytest.approx(delta)
    noise = poison_update(attack(kind="gaussian", noise_std=3.0), np.zeros(20000), 0)
    assert noise.std() == pytest.approx(3.0, rel=0.03)
    assert poison_update(attack(kind="label_flip"), delta, 0) is delta


def test_class_ids_beyond_the_data_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="attack.target_class"):
        check_classes(attack(kind="backdoor", target_class=5), 3)
    with pytest.raises(ValueError, match="attack.flip_map"):
        check_classes(attack(kind="label_flip", flip_map={0: 4}), 3)


def test_malicious_clients_are_seeded_and_counted() -> None:
    raw = {"name": "t", "data": {"partition": {"kind": "iid", "num_clients": 10}}}
    sc = parse_scenario({**raw, "attack": {"kind": "sign_flip", "fraction": 0.3}})
    bad = malicious_clients(sc)
    assert len(bad) == 3 and bad == malicious_clients(sc)
    other = parse_scenario({**raw, "seed": 1, "attack": {"kind": "sign_flip", "fraction": 0.3}})
    assert malicious_clients(other) != bad
    late = parse_scenario({**raw, "attack": {"kind": "sign_flip", "count": 2, "start_round": 3}})
    pid = next(iter(malicious_clients(late)))
    assert not attacking(late, pid, 2) and attacking(late, pid, 3)
    assert malicious_clients(parse_scenario(raw)) == frozenset()


def test_alie_sits_z_standard_deviations_below_the_benign_mean() -> None:
    benign = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert alie(benign, 1.5) == pytest.approx([1.0 - 1.5, 2.0 - 1.5])
    # n = 50, m = 12: s = floor(26) - 12 = 14 supporters needed, z = Phi^-1(36 / 50)
    assert alie_z(50, 12) == pytest.approx(0.5828, abs=1e-4)
    with pytest.raises(ValueError, match="<= 0"):
        alie_z(10, 1)  # the share is one half: z = 0, no floor
    with pytest.raises(ValueError, match="majority"):
        alie_z(10, 6)
    assert round_alie_z(10, 1) == 0.0 and round_alie_z(50, 12) == alie_z(50, 12)


@pytest.mark.parametrize(
    ("attack", "field"),
    [({"count": 1}, "attack.z"), ({"fraction": 0.1}, "attack.z"), ({"count": 6}, "attack.count")],
)
def test_alie_without_a_positive_default_z_is_refused_naming_the_field(
    attack: dict, field: str
) -> None:
    doc = {
        "name": "a",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 10}},
        "attack": {"kind": "alie", **attack},
    }
    with pytest.raises(FedrobustError) as info:
        parse_scenario(doc)
    assert info.value.where == field
    assert "Baruch" in info.value.what and "attack.z" in info.value.what
    doc["attack"]["z"] = 1.0
    assert parse_scenario(doc).attack.z == 1.0


def test_ipm_is_a_negative_multiple_of_the_benign_mean() -> None:
    benign = np.array([[1.0, 2.0], [3.0, 2.0]])
    assert ipm(benign, 0.5) == pytest.approx([-1.0, -1.0])


@pytest.mark.parametrize("deviation", ["std", "unit_vec", "sign"])
def test_minmax_stays_within_the_benign_diameter_and_goes_as_far_as_it_can(
    deviation: str,
) -> None:
    benign = np.random.default_rng(0).normal(size=(8, 30))
    forged = minmax(benign, deviation)
    diameter = max(np.linalg.norm(a - b) for a in benign for b in benign)
    farthest = np.linalg.norm(benign - forged, axis=1).max()
    assert farthest <= diameter + 1e-9
    assert farthest > 0.99 * diameter  # the search pushed gamma to the limit


def test_colluding_update_needs_two_benign_updates() -> None:
    with pytest.raises(ValueError, match="at least 2 benign"):
        colluding_update(attack(kind="ipm"), np.ones((1, 3)), 4, 3)


def test_flat_delta_and_apply_delta_round_trip_and_keep_integer_buffers() -> None:
    global_ = ArrayRecord(
        {"w": Array(np.zeros((2, 2), np.float32)), "n": Array(np.array([7], np.int64))}
    )
    client = ArrayRecord(
        {"w": Array(np.arange(4, dtype=np.float32).reshape(2, 2)), "n": Array(np.array([9]))}
    )
    delta = flat_delta(client, global_)
    assert delta.tolist() == [0, 1, 2, 3]
    back = apply_delta(global_, -delta)
    assert back["w"].numpy().tolist() == [[0, -1], [-2, -3]]
    assert back["w"].numpy().dtype == np.float32 and back["n"].numpy().tolist() == [7]
    with pytest.raises(ValueError, match="update has 3 values, the model 4"):
        apply_delta(global_, np.zeros(3))


def test_backdoor_success_counts_triggered_non_target_inputs_sent_to_the_target() -> None:
    cfg = attack(kind="backdoor", target_class=2, trigger_size=1)

    class TriggerDetector(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            fired = (x[:, 0, -1, -1] == 1.0).float()
            return torch.stack([1 - fired, torch.zeros_like(fired), fired], dim=1)

    x = np.zeros((6, 1, 3, 3), np.float32)
    y = np.array([0, 1, 2, 2, 0, 1])
    assert backdoor_success(TriggerDetector(), cfg, x, y) == 1.0
    assert (
        backdoor_success(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 3)), cfg, x, y)
        <= 1.0
    )


def test_a_sequence_trigger_is_the_last_features_of_the_last_steps() -> None:
    cfg = AttackConfig(kind="backdoor", trigger_size=2, trigger_value=1.0)
    stamped = stamp_trigger(cfg, np.zeros((3, 6, 4), dtype=np.float32))
    assert (stamped[:, -2:, -2:] == 1.0).all()
    assert stamped.sum() == 3 * 4  # nothing else changes
