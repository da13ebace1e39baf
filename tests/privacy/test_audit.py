"""The one-run audit: its statistics hold at their confidence, and it catches a broken mechanism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.models.config import ModelConfig
from fedrobust.privacy.audit import audit_from_scores, epsilon_lower_bound
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.privacy.ledger import LedgerEntry, epsilon, sample_rate, steps_per_epoch
from fedrobust.scenario import parse_scenario
from fedrobust.train import local_train
from fedrobust.train.config import TrainConfig


def randomized_response(eps: float, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An eps-DP release of each membership bit; scores are the released bits."""
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    truthful = rng.random(m) < math.exp(eps) / (1 + math.exp(eps))
    released = np.where(truthful, included, ~included)
    return released + 1e-3 * rng.random(m), included  # ties broken at random


@pytest.mark.parametrize("eps", [1.0, 2.0])
def test_an_eps_dp_mechanism_is_rarely_accused_of_more(eps: float) -> None:
    below = [
        audit_from_scores(*randomized_response(eps, 1000, seed), delta=0.0).epsilon_lower_bound
        <= eps
        for seed in range(200)
    ]
    assert np.mean(below) >= 0.93


def test_perfect_guesses_match_the_closed_form_and_grow_with_r() -> None:
    bounds = []
    for r in (10, 100, 1000):
        p = 0.05 ** (1 / r)  # all r right has probability p^r = beta at the bound
        closed = math.log(p / (1 - p))
        bound = epsilon_lower_bound(1000, r, r, delta=0.0)
        assert bound == pytest.approx(closed, abs=1e-3)
        bounds.append(bound)
    assert bounds[0] < bounds[1] < bounds[2]


def test_random_guessing_concludes_nothing() -> None:
    rng = np.random.default_rng(0)
    bounds = [
        audit_from_scores(rng.random(1000), rng.random(1000) < 0.5, delta=1e-5).epsilon_lower_bound
        for _ in range(50)
    ]
    assert np.mean(np.array(bounds) == 0.0) >= 0.9


def test_a_positive_delta_lowers_the_bound() -> None:
    pure = epsilon_lower_bound(1000, 500, 480, delta=0.0)
    approx = epsilon_lower_bound(1000, 500, 480, delta=1e-4)
    assert 0 < approx < pure


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((100, 10, 11, 0.0), "num_correct"),
        ((100, 101, 5, 0.0), "num_guesses"),
        ((100, 10, 5, 1.5), "delta"),
    ],
)
def test_bad_counts_are_refused(args: tuple, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        epsilon_lower_bound(*args)
    with pytest.raises(ValueError, match="confidence"):
        epsilon_lower_bound(100, 10, 5, 0.0, confidence=1.0)
    with pytest.raises(ValueError, match="equal length"):
        audit_from_scores(np.zeros(5), np.zeros(4, bool), delta=0.0)
    with pytest.raises(ValueError, match="guess count"):
        audit_from_scores(np.zeros(5), np.zeros(5, bool), delta=0.0, guesses=6)
    with pytest.raises(ValueError, match="at least one guess count"):
        audit_from_scores(np.zeros(5), np.zeros(5, bool), delta=0.0, guesses=[])
    with pytest.raises(ValueError, match="finite"):
        audit_from_scores(np.array([0.0, np.nan]), np.zeros(2, bool), delta=0.0)
    with pytest.raises(ValueError, match="confidence must be in \\(0, 1\\), got 1.5"):
        audit_from_scores(np.zeros(5), np.zeros(5, bool), delta=0.0, confidence=1.5)
    assert (
        audit_from_scores(np.arange(4.0), np.arange(4) > 1, 0.0, guesses=np.int64(4)).num_guesses
        == 4
    )


def train_with_canaries(sigma: float) -> tuple[float, float]:
    """DP-SGD on digits plus 1000 canaries, half included; (audit bound, epsilon of sigma 4)."""
    sc = parse_scenario(
        {"name": "a", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 1}}}
    )
    fed = build_federation(sc.data, 0)
    data = fed.clients[0]
    rng = np.random.default_rng(1)
    cx = rng.random((1000, *fed.spec.shape), dtype=np.float32)
    cy = rng.integers(0, 10, 1000)
    included = rng.random(1000) < 0.5
    x = np.concatenate([data.x_train, cx[included]])
    y = np.concatenate([data.y_train, cy[included]])
    train = TrainConfig(local_epochs=40, batch_size=64, optimizer={"lr": 0.1, "momentum": 0.9})
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=[256]), fed.spec)
    local_train(model, x, y, train=train, num_classes=10, seed=0, dp=DPSGDRecipe(sigma, 10.0))
    with torch.no_grad():
        logits = model(torch.from_numpy(cx))
    scores = -F.cross_entropy(logits, torch.from_numpy(cy), reduction="none").numpy()
    bound = audit_from_scores(scores, included, delta=1e-5).epsilon_lower_bound
    steps = 40 * steps_per_epoch(len(y), 64, True)
    claimed = epsilon([LedgerEntry(4.0, sample_rate(len(y), 64), steps)], 1e-5, "rdp")
    return bound, claimed


def test_the_audit_refutes_a_mechanism_that_adds_no_noise() -> None:
    bound, claimed = train_with_canaries(sigma=0.0)  # claims sigma 4, adds nothing
    assert bound > claimed


def test_the_audit_stays_below_the_claim_of_a_sound_mechanism() -> None:
    bound, claimed = train_with_canaries(sigma=4.0)
    assert bound <= claimed
