"""The ``evaluation.privacy_attacks`` section refuses what cannot run, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario


def scenario(attacks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "x",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
        "train": {"rounds": 3},
        "evaluation": {"privacy_attacks": attacks},
        **extra,
    }


def test_defaults_attack_client_0_in_round_1_with_both_attacks() -> None:
    cfg = parse_scenario(scenario({})).evaluation.privacy_attacks
    assert cfg is not None
    assert cfg.attacks == ["inversion", "membership"] and cfg.recorded_clients() == [0]
    assert cfg.rounds == [1]
    assert cfg.records_updates()


@pytest.mark.parametrize(
    ("attacks", "where", "what"),
    [
        ({"attacks": ["dlg"]}, "evaluation.privacy_attacks.attacks", ""),
        ({"attacks": []}, "evaluation.privacy_attacks.attacks", ""),
        ({"clients": [4]}, "evaluation.privacy_attacks.clients", "outside 0..3"),
        ({"rounds": [4]}, "evaluation.privacy_attacks.rounds", "beyond train.rounds"),
        ({"rounds": [1, 1]}, "evaluation.privacy_attacks.rounds", "twice"),
        ({"attacks": ["membership"], "rounds": [1]}, "evaluation.privacy_attacks.rounds",
         "does not apply"),
        ({"attacks": ["inversion"], "membership": {}}, "evaluation.privacy_attacks.membership",
         "does not apply"),
        ({"membership": {"shadow_models": 1}},
         "evaluation.privacy_attacks.membership.shadow_models", "at least 2"),
        ({"inversion": {"method": "magic"}}, "evaluation.privacy_attacks.inversion.method", ""),
        ({"inversion": {"steps": 3}}, "evaluation.privacy_attacks.inversion.steps", "unknown key"),
    ],
)  # fmt: skip
def test_bad_fields_are_refused_by_name(attacks: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(FedrobustError) as err:
        parse_scenario(scenario(attacks))
    assert err.value.where.removesuffix(".0") == where  # a list item is named by its index
    assert what in err.value.what


def test_explicit_clients_are_refused_under_secagg() -> None:
    secure = {"privacy": {"secure_aggregation": {"num_shares": 4, "reconstruction_threshold": 3}}}
    resolved = parse_scenario(scenario({}, **secure))  # the default records the aggregate
    assert parse_scenario(resolved.model_dump(mode="json")) == resolved  # as clients get it
    with pytest.raises(FedrobustError) as err:
        parse_scenario(scenario({"clients": [1]}, **secure))
    assert err.value.where == "evaluation.privacy_attacks.clients"
    assert "aggregate" in err.value.what
