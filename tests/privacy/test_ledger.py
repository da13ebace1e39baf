"""The ledger's epsilon is Opacus's epsilon for the same history, and its counts are Opacus's."""

from __future__ import annotations

import math

import pytest
import torch
from opacus import PrivacyEngine
from opacus.accountants import RDPAccountant
from torch.utils.data import DataLoader, TensorDataset

from fedrobust.privacy.ledger import (
    LedgerEntry,
    PrivacyLedger,
    calibrate_noise,
    epsilon,
    history,
    sample_rate,
    steps_per_epoch,
)


def test_opacus_golden_values_reproduce_through_our_wiring() -> None:
    # Opacus's own accountant tests: sigma 1.5, q 0.04, 90 epochs, delta 1e-5
    rdp = epsilon([LedgerEntry(1.5, 0.04, int(90 / 0.04))], 1e-5, "rdp")
    assert rdp == pytest.approx(7.32911117143, abs=1e-7)
    prv = epsilon([LedgerEntry(1.5, 0.04, int(90 // 0.04))], 1e-5, "prv")
    assert prv == pytest.approx(6.777395712150674, abs=1e-7)
    gdp = epsilon([LedgerEntry(1.5, 0.04, int(90 // 0.04))], 1e-5, "gdp")
    assert 6.59 < gdp < 6.6
    assert calibrate_noise(8, 1e-5, 0.04, 2000, "rdp") == pytest.approx(1.3562, abs=1e-4)


@pytest.mark.parametrize("accountant", ["rdp", "prv", "gdp"])
def test_rounds_compose_exactly_like_one_long_run(accountant: str) -> None:
    rounds = [LedgerEntry(1.1, 1 / 12, 12, r) for r in (1, 2, 3)]
    assert history(rounds) == [(1.1, 1 / 12, 36)]
    whole = epsilon([LedgerEntry(1.1, 1 / 12, 36)], 1e-5, accountant)
    assert epsilon(rounds, 1e-5, accountant) == pytest.approx(whole, rel=1e-12)


def test_epsilon_equals_opacus_accountant_stepped_one_step_at_a_time() -> None:
    entries = [LedgerEntry(0.9, 1 / 7, 7, 1), LedgerEntry(1.3, 1 / 7, 14, 2)]
    acc = RDPAccountant()
    for entry in entries:
        for _ in range(entry.steps):
            acc.step(noise_multiplier=entry.noise_multiplier, sample_rate=entry.sample_rate)
    assert epsilon(entries, 1e-5, "rdp") == pytest.approx(acc.get_epsilon(1e-5), rel=1e-12)


@pytest.mark.parametrize(("n", "batch"), [(93, 1), (100, 32), (360, 32), (7, 16), (1000, 64)])
@pytest.mark.parametrize("poisson", [True, False])
def test_sample_rate_and_steps_are_those_opacus_uses(n: int, batch: int, poisson: bool) -> None:
    model = torch.nn.Linear(2, 2)
    data = DataLoader(TensorDataset(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long)), batch)
    _, optimizer, loader = PrivacyEngine().make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        data_loader=data,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=poisson,
    )
    assert sample_rate(n, batch) == 1 / len(data)
    assert steps_per_epoch(n, batch, poisson) == len(loader)
    if (n, batch) == (93, 1) and poisson:
        assert len(loader) == 92  # int(1 / (1 / 93)): why we ask Opacus, not ceil(n / B)


def test_ledger_epsilon_never_decreases_and_survives_a_state_dict_round_trip() -> None:
    ledger = PrivacyLedger(1e-5, "rdp")
    seen = [ledger.epsilon(0)]
    for rnd in range(1, 6):
        ledger.add(0, LedgerEntry(1.0, 0.05, 20, rnd))
        seen.append(ledger.epsilon(0))
    assert seen[0] == 0.0
    assert all(b > a for a, b in zip(seen, seen[1:], strict=False))
    copy = PrivacyLedger(1.0, "prv")
    copy.load_state_dict(ledger.state_dict())
    assert copy.epsilon(0) == ledger.epsilon(0)
    assert copy.epsilons(2) == [ledger.epsilon(0), 0.0]
    assert copy.to_json()["0"][4] == {
        "noise_multiplier": 1.0,
        "sample_rate": 0.05,
        "steps": 20,
        "round": 5,
    }
    assert not math.isnan(copy.epsilon(0))
