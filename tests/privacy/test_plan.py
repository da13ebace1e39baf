"""Noise is calibrated once per run and per client; impossible settings are refused."""

from __future__ import annotations

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.privacy.accounting import check_privacy
from fedrobust.privacy.ledger import epsilon
from fedrobust.privacy.plan import client_level_entry, client_level_sigma, plan_sample_dp
from fedrobust.sampling import participation_counts
from fedrobust.scenario import parse_scenario


def scenario(dp: dict, **train: object) -> object:
    return parse_scenario(
        {
            "name": "p",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 6}},
            "train": {"rounds": 10, "batch_size": 32, **train},
            "privacy": {"dp": dp},
        }
    )


def test_target_epsilon_is_met_by_every_client_and_missed_by_none_far() -> None:
    sc = scenario({"mode": "sample", "target_epsilon": 3.0}, fraction_train=0.5, local_epochs=2)
    sizes = {0: 120, 1: 200, 2: 250, 3: 64, 4: 300, 5: 180}
    plans = plan_sample_dp(sc, sizes)
    counts = participation_counts(sc)
    assert len(set(counts)) > 1  # clients take part in different numbers of rounds
    for client, plan in plans.items():
        assert plan.rounds == counts[client]
        spent = epsilon([plan.entry(r) for r in range(plan.rounds)], 1e-5, "rdp")
        assert 3.0 - 0.02 <= spent <= 3.0, (client, spent)


def test_given_noise_multiplier_is_used_as_is() -> None:
    sc = scenario({"mode": "sample", "noise_multiplier": 1.3})
    plans = plan_sample_dp(sc, {i: 100 for i in range(6)})
    assert {p.noise_multiplier for p in plans.values()} == {1.3}
    assert plans[0].steps_per_round == 4 and plans[0].sample_rate == 0.25


def test_delta_not_below_one_over_the_largest_client_is_refused() -> None:
    sc = scenario({"mode": "sample", "noise_multiplier": 1.0, "delta": 0.02})
    with pytest.raises(FedrobustError) as info:
        check_privacy(sc, {0: 45, 1: 30, 2: 40, 3: 20, 4: 60, 5: 10})
    assert info.value.where == "privacy.dp.delta"
    assert "largest client training set = 60" in info.value.what
    check_privacy(sc, {i: 40 for i in range(6)})  # 0.02 < 1 / 40: accepted
    # one large client binds: 1e-3 is not below 1 / 100,000 whatever the small ones hold
    big = scenario({"mode": "sample", "noise_multiplier": 1.0, "delta": 1e-3})
    with pytest.raises(FedrobustError):
        check_privacy(big, {0: 100_000, **{i: 20 for i in range(1, 6)}})


def test_unreachable_target_epsilon_names_the_field() -> None:
    sc = scenario({"mode": "sample", "target_epsilon": 1e-9})
    with pytest.raises(FedrobustError) as info:
        check_privacy(sc, {i: 100 for i in range(6)})
    assert info.value.where == "privacy.dp.target_epsilon"


def test_client_level_epsilon_is_the_subsampled_gaussian_over_the_rounds() -> None:
    sc = scenario({"mode": "client", "noise_multiplier": 1.2}, fraction_train=0.5)
    entries = [client_level_entry(sc, 1.2, r) for r in range(1, 11)]
    assert entries[0].sample_rate == 0.5 and entries[0].steps == 1
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(1.2, 0.5, 10)]
    assert epsilon(entries, 1e-5, "rdp") == pytest.approx(acc.get_epsilon(1e-5), rel=1e-12)
    calibrated = scenario({"mode": "client", "target_epsilon": 5.0}, fraction_train=0.5)
    sigma = client_level_sigma(calibrated)
    planned = [client_level_entry(calibrated, sigma, r) for r in range(1, 11)]
    assert 4.98 <= epsilon(planned, 1e-5, "rdp") <= 5.0


def test_an_accountant_that_fails_to_calibrate_is_named_with_a_way_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> float:
        raise ValueError("f(a) and f(b) must have different signs")

    monkeypatch.setattr("fedrobust.privacy.plan.calibrate_noise", broken)
    sc = scenario({"mode": "sample", "target_epsilon": 20.0, "accountant": "gdp"})
    with pytest.raises(FedrobustError) as info:
        check_privacy(sc, {i: 100 for i in range(6)})
    assert info.value.where == "privacy.dp.target_epsilon"
    assert "gdp accountant could not calibrate" in info.value.what
    assert "try privacy.dp.accountant: rdp" in info.value.what
