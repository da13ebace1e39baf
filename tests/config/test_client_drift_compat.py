"""SCAFFOLD, FedDyn and FedNova refuse what their extra state or rescaling would break,
naming ``strategy.name``; their fields apply to them alone."""

from __future__ import annotations

from typing import Any

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario

DRIFT = ("scaffold", "feddyn", "fednova")
SECAGG = {"secure_aggregation": {"num_shares": 3, "reconstruction_threshold": 2}}


def scenario(name: str, **sections: Any) -> object:
    return parse_scenario(
        {
            "name": "drift",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 5}},
            "strategy": {"name": name},
            **sections,
        }
    )


def refusal(name: str, **sections: Any) -> FedrobustError:
    with pytest.raises(FedrobustError) as info:
        scenario(name, **sections)
    return info.value


@pytest.mark.parametrize("name", DRIFT)
def test_client_level_dp_is_refused(name: str) -> None:
    error = refusal(name, privacy={"dp": {"mode": "client", "noise_multiplier": 1.0}})
    assert error.where == "strategy.name"
    assert "escape client-level DP's clipping and noise" in error.what


@pytest.mark.parametrize("name", DRIFT)
def test_robust_defences_are_refused(name: str) -> None:
    error = refusal(name, defense={"name": "median"})
    assert error.where == "strategy.name"
    assert "one synthetic aggregate" in error.what and "'median'" in error.what


@pytest.mark.parametrize("name", ["scaffold", "feddyn"])
def test_secure_aggregation_is_refused_where_per_client_state_is_tracked(name: str) -> None:
    error = refusal(name, privacy=SECAGG)
    assert error.where == "strategy.name"
    assert "privacy.secure_aggregation hides" in error.what


def test_fednova_composes_with_secure_aggregation() -> None:
    scenario("fednova", privacy=SECAGG)


@pytest.mark.parametrize("name", DRIFT)
def test_dp_sgd_and_attacks_compose(name: str) -> None:
    dp = {"dp": {"mode": "sample", "noise_multiplier": 1.0}}
    scenario(name, privacy=dp, attack={"kind": "sign_flip", "count": 1})


def test_each_strategy_field_applies_to_its_strategies_only() -> None:
    parse_scenario({"name": "a", "strategy": {"name": "feddyn", "alpha": 0.1}})
    parse_scenario({"name": "a", "strategy": {"name": "scaffold", "server_lr": 0.5}})
    misplaced = [
        {"name": "fedavg", "alpha": 0.1},
        {"name": "scaffold", "alpha": 0.1},
        {"name": "fednova", "server_lr": 1.0},
        {"name": "feddyn", "proximal_mu": 0.1},
    ]
    for doc in misplaced:
        with pytest.raises(FedrobustError) as info:
            parse_scenario({"name": "a", "strategy": doc})
        assert info.value.where.startswith("strategy.")


def test_alpha_must_be_positive() -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario({"name": "a", "strategy": {"name": "feddyn", "alpha": 0}})
    assert info.value.where == "strategy.alpha"
