"""Membership inference: the statistics, the shadow masks, online LiRA, and the loss attack
against an overfit model and the same model trained with DP-SGD."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedrobust.privacy_attacks.membership import (
    MembershipResult,
    lira_scores,
    logit_confidence,
    loss_scores,
    membership_inference,
    score_result,
    shadow_masks,
)
from fedrobust.privacy_attacks.roc import roc_auc


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread, and a busy machine does not slow them down
    by an order of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(seed: int, hidden: int) -> nn.Module:
    """A 64-hidden-10 MLP initialised from ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def train(
    x: np.ndarray, y: np.ndarray, seed: int, *, epochs: int, hidden: int = 128, dp: bool = False
) -> nn.Module:
    """Adam (lr 1e-2, batches of 32) on cross-entropy; with ``dp``, Opacus DP-SGD at
    epsilon 1, delta 1e-5, clipping norm 1 (Poisson batches, seeded noise)."""
    model = mlp(seed, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=32, shuffle=True, generator=generator)
    if dp:
        from opacus import PrivacyEngine

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus: "secure RNG turned off"
            model, optimizer, loader = PrivacyEngine().make_private_with_epsilon(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                target_epsilon=1.0,
                target_delta=1e-5,
                epochs=epochs,
                max_grad_norm=1.0,
                noise_generator=torch.Generator().manual_seed(seed + 1),
            )
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus's hooks: "no inputs require gradients"
        for _ in range(epochs):
            for inputs, targets in loader:
                if len(inputs) == 0:  # a Poisson batch can be empty
                    continue
                optimizer.zero_grad()
                F.cross_entropy(model(inputs), targets).backward()
                optimizer.step()
    return model


def noisy_digits(seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8x8 digits in [0, 1], plus fixed Gaussian pixel noise of std ``noise``."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    x = digits.data / 16.0 + noise * rng.standard_normal(digits.data.shape)
    return x.astype(np.float32), digits.target.astype(np.int64)


def split(y: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``per_class`` random members of each class, and of all the others."""
    order = rng.permutation(len(y))
    members = np.concatenate([order[y[order] == c][:per_class] for c in range(10)])
    return members, np.setdiff1d(np.arange(len(y)), members)


# --- statistics -------------------------------------------------------------------------


def test_loss_scores_are_minus_the_cross_entropy_and_restore_the_mode() -> None:
    model = mlp(0, 16)
    model.train()
    rng = np.random.default_rng(0)
    x = rng.random((70, 64), dtype=np.float32)
    y = rng.integers(0, 10, size=70)
    scores = loss_scores(model, x, y, batch_size=16)
    assert model.training
    with torch.no_grad():
        expected = -F.cross_entropy(
            model(torch.from_numpy(x)), torch.from_numpy(y), reduction="none"
        )
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, loss_scores(model, x, y, batch_size=512), atol=1e-6)
    model.eval()
    loss_scores(model, x, y)
    assert not model.training


def test_logit_confidence_is_the_log_odds_of_the_true_label() -> None:
    model = mlp(1, 16)
    rng = np.random.default_rng(1)
    x = rng.random((20, 64), dtype=np.float32)
    y = rng.integers(0, 10, size=20)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x)).double(), dim=1)[torch.arange(20), y]
    expected = torch.log(p / (1 - p)).numpy()
    np.testing.assert_allclose(logit_confidence(model, x, y), expected, rtol=1e-4, atol=1e-5)


def test_logit_confidence_stays_finite_when_the_model_is_certain() -> None:
    model = nn.Linear(1, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[200.0], [0.0], [0.0]]))
    statistic = logit_confidence(model, np.ones((2, 1), np.float32), np.array([0, 1]))
    # p_0 rounds to 1 in float32; the log-odds are 200 - log 2 and -200 - log(1 + e^-200).
    np.testing.assert_allclose(statistic, [200 - math.log(2), -200], rtol=1e-6)


# --- shadow masks -----------------------------------------------------------------------


@pytest.mark.parametrize("num_shadows", [2, 4, 16])
def test_shadow_masks_are_balanced(num_shadows: int) -> None:
    masks = shadow_masks(101, num_shadows, np.random.default_rng(0))
    assert masks.shape == (num_shadows, 101) and masks.dtype == bool
    assert (masks.sum(axis=0) == num_shadows // 2).all()
    assert np.abs(masks.sum(axis=1) - 101 / 2).max() < 101 / 4  # about half the pool each


def test_shadow_masks_with_an_odd_count_take_floor_or_ceil() -> None:
    masks = shadow_masks(400, 5, np.random.default_rng(0))
    ins = masks.sum(axis=0)
    assert set(ins.tolist()) == {2, 3}
    assert 0.4 < (ins == 3).mean() < 0.6


def test_shadow_masks_are_deterministic_by_seed() -> None:
    first = shadow_masks(50, 8, np.random.default_rng(7))
    np.testing.assert_array_equal(first, shadow_masks(50, 8, np.random.default_rng(7)))
    assert not np.array_equal(first, shadow_masks(50, 8, np.random.default_rng(8)))


def test_shadow_masks_refuse_no_shadow() -> None:
    with pytest.raises(ValueError, match="num_shadows"):
        shadow_masks(10, 0, np.random.default_rng(0))


# --- LiRA -------------------------------------------------------------------------------


def test_lira_separates_gaussian_in_and_out_statistics() -> None:
    rng = np.random.default_rng(0)
    num, shadows = 400, 16
    inside = shadow_masks(num, shadows, rng)
    # Each candidate has its own difficulty; training on it adds 2 to its statistic.
    difficulty = 3 * rng.standard_normal(num)
    shadow = difficulty + 2 * inside + rng.standard_normal((shadows, num))
    labels = np.arange(num) < num // 2
    target = difficulty + 2 * labels + rng.standard_normal(num)
    for fixed_variance in (True, False):
        scores = lira_scores(target, shadow, inside, fixed_variance=fixed_variance)
        assert roc_auc(scores, labels) > 0.8
    # The raw statistic, blind to each candidate's difficulty, does much worse.
    assert roc_auc(target, labels) < 0.75


def test_lira_score_by_hand() -> None:
    shadow = np.array([[1.0, 5.0], [3.0, 7.0], [0.0, 4.0], [-2.0, 2.0]])
    inside = np.array([[True, True], [True, True], [False, False], [False, False]])
    # Candidate 0: IN {1, 3} (mean 2), OUT {0, -2} (mean -1); candidate 1: IN mean 6,
    # OUT mean 3. Every value is 1 from its mean: pooled variance 4 / (4 - 2) = 2 on
    # both sides, so the log-normalisers cancel and at t = 1 the score is
    # -(1 - 2)^2 / 4 + (1 + 1)^2 / 4 = 0.75; at t = 4.5, -(1.5^2) / 4 + 1.5^2 / 4 = 0.
    scores = lira_scores(np.array([1.0, 4.5]), shadow, inside)
    np.testing.assert_allclose(scores, [0.75, 0.0], atol=1e-12)


def test_lira_per_example_variance_by_hand() -> None:
    shadow = np.array([[1.0], [3.0], [0.0], [-4.0]])
    inside = np.array([[True], [True], [False], [False]])
    # IN {1, 3}: mean 2, std sqrt(2); OUT {0, -4}: mean -2, std sqrt(8).
    t = 1.0
    expected = (
        -math.log(math.sqrt(2)) - (t - 2) ** 2 / 4 + math.log(math.sqrt(8)) + (t + 2) ** 2 / 16
    )
    scores = lira_scores(np.array([t]), shadow, inside, fixed_variance=False)
    assert scores[0] == pytest.approx(expected)


def test_lira_without_in_or_out_shadows_falls_back_to_one_sided_tests() -> None:
    shadow = np.array([[1.0, 0.0, 5.0], [3.0, 2.0, 7.0], [-1.0, 4.0, 6.0], [1.0, 6.0, 8.0]])
    inside = np.array([[True, False, True]] * 2 + [[False, False, True]] * 2)
    target = np.array([0.0, 3.0, 6.5])
    scores = lira_scores(target, shadow, inside)
    assert np.isfinite(scores).all()
    # Candidate 1 has no IN shadow: -log P[Z_out >= t] with Z_out ~ N(3, s_out) at its
    # mean t = 3 is log 2. Candidate 2 has no OUT shadow: log P[Z_in <= t] at its mean
    # t = 6.5 is -log 2.
    assert scores[1] == pytest.approx(math.log(2))
    assert scores[2] == pytest.approx(-math.log(2))
    higher = lira_scores(target + 1, shadow, inside)
    assert (higher[1:] > scores[1:]).all()  # both fallbacks grow with the statistic


def test_lira_checks_shapes() -> None:
    with pytest.raises(ValueError, match="inside"):
        lira_scores(np.zeros(3), np.zeros((2, 3)), np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="shadow"):
        lira_scores(np.zeros(3), np.zeros((2, 4)), np.zeros((2, 4), bool))


# --- results ----------------------------------------------------------------------------


def test_score_result_summary_is_plain_json() -> None:
    result = score_result("loss", np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    assert isinstance(result, MembershipResult)
    summary = result.summary()
    assert summary == {"auc": 0.75, "tpr_at_0.1%_fpr": 0.5, "tpr_at_1%_fpr": 0.5}
    assert all(type(value) is float for value in summary.values())
    json.dumps(summary)


# --- the attacks on trained models ------------------------------------------------------


def test_loss_attack_finds_an_overfit_model_but_not_its_dp_twin() -> None:
    """100 digits (10 a class, with pixel noise so that fitting them takes memorising)
    against the 1697 others: the overfit model (200 epochs, 100% train accuracy) leaks
    membership; the same model trained with DP-SGD at epsilon 1 (60 epochs) barely does.

    As measured with seed 1: AUC 0.757 and 0.525. Seeds 0-9 (data, split and training):
    0.761 +- 0.015 (min 0.739) and 0.525 +- 0.012 (max 0.541); seed 1 is a typical one.
    """
    x, y = noisy_digits(1, noise=0.1)
    members, non_members = split(y, 10, np.random.default_rng(1))
    candidates = np.concatenate([members, non_members])
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])

    overfit = train(x[members], y[members], 1, epochs=200)
    accuracy = (overfit(torch.from_numpy(x[members])).argmax(1).numpy() == y[members]).mean()
    assert accuracy == 1.0
    overfit_auc = roc_auc(loss_scores(overfit, x[candidates], y[candidates]), labels)

    private = train(x[members], y[members], 1, epochs=60, dp=True)
    private_auc = roc_auc(loss_scores(private, x[candidates], y[candidates]), labels)

    assert overfit_auc >= 0.7
    assert private_auc <= 0.55


def small_train_fn(x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    """A shadow (and target) recipe small enough for a unit test."""
    return train(x, y, seed, epochs=30, hidden=32)


def test_membership_inference_end_to_end() -> None:
    x, y = noisy_digits(1, noise=0.15)
    order = np.random.default_rng(1).permutation(len(y))
    members, non_members, extra = order[:40], order[40:80], order[80:120]
    target = small_train_fn(x[members], y[members], 100)

    def attack() -> dict[str, MembershipResult]:
        return membership_inference(
            target,
            (x[members], y[members]),
            (x[non_members], y[non_members]),
            train_fn=small_train_fn,
            shadow_models=4,
            seed=3,
            pool=(x[extra], y[extra]),
        )

    results = attack()
    assert set(results) == {"loss", "lira"}
    for name, result in results.items():
        assert result.method == name
        assert 0.0 <= result.auc <= 1.0
        assert result.fpr[0] == 0.0 and result.tpr[-1] == 1.0
    summaries = {name: result.summary() for name, result in results.items()}
    json.dumps(summaries)
    again = attack()
    assert {name: result.summary() for name, result in again.items()} == summaries
    np.testing.assert_array_equal(again["lira"].tpr, results["lira"].tpr)


def test_membership_inference_without_shadows_runs_the_loss_attack_alone() -> None:
    model = mlp(0, 16)
    rng = np.random.default_rng(0)
    data = (rng.random((10, 64), dtype=np.float32), rng.integers(0, 10, size=10))
    others = (rng.random((10, 64), dtype=np.float32), rng.integers(0, 10, size=10))
    results = membership_inference(model, data, others, train_fn=None, shadow_models=8, seed=0)
    assert set(results) == {"loss"}
    results = membership_inference(
        model, data, others, train_fn=small_train_fn, shadow_models=0, seed=0
    )
    assert set(results) == {"loss"}
    with pytest.raises(ValueError, match="shadow_models"):
        membership_inference(model, data, others, train_fn=small_train_fn, shadow_models=1, seed=0)
