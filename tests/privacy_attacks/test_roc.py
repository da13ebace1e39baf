"""ROC curve, AUC and TPR at low FPR against hand-computed cases and a pairwise count."""

from __future__ import annotations

import numpy as np
import pytest

from fedrobust.privacy_attacks.roc import roc_auc, roc_curve, tpr_at_fpr


def test_perfect_separation_has_auc_one() -> None:
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    labels = np.array([1, 1, 0, 0])
    fpr, tpr = roc_curve(scores, labels)
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1, 1])
    assert roc_auc(scores, labels) == 1.0


def test_reversed_scores_have_auc_zero() -> None:
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0])) == 0.0


def test_all_tied_scores_move_in_one_step() -> None:
    fpr, tpr = roc_curve(np.full(5, 0.3), np.array([1, 0, 1, 0, 0]))
    np.testing.assert_allclose(fpr, [0, 1])
    np.testing.assert_allclose(tpr, [0, 1])
    assert roc_auc(np.full(5, 0.3), np.array([1, 0, 1, 0, 0])) == 0.5


def test_four_points_by_hand() -> None:
    # Accepting 0.9 (member), 0.8 (non-member), 0.7 (member), 0.6 (non-member) in turn.
    scores = np.array([0.7, 0.6, 0.9, 0.8])
    labels = np.array([1, 0, 1, 0])
    fpr, tpr = roc_curve(scores, labels)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    # Member 0.9 beats both non-members, member 0.7 beats one: 3 of 4 pairs.
    assert roc_auc(scores, labels) == pytest.approx(0.75)


def test_a_tie_across_classes_counts_half() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    labels = np.array([1, 1, 0, 0])
    fpr, tpr = roc_curve(scores, labels)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    # Pairs: 0.9 beats both (2), 0.5 vs 0.5 ties (1/2), 0.5 beats 0.1 (1): 3.5 of 4.
    assert roc_auc(scores, labels) == pytest.approx(0.875)


def test_tpr_at_fpr_on_a_hand_curve() -> None:
    fpr = np.array([0, 0, 0.5, 0.5, 1])
    tpr = np.array([0, 0.5, 0.5, 1, 1])
    assert tpr_at_fpr(fpr, tpr, 0.0) == 0.5
    assert tpr_at_fpr(fpr, tpr, 0.001) == 0.5
    assert tpr_at_fpr(fpr, tpr, 0.49) == 0.5
    assert tpr_at_fpr(fpr, tpr, 0.5) == 1.0
    assert tpr_at_fpr(fpr, tpr, 1.0) == 1.0


def test_tpr_at_fpr_zero_without_any_early_member() -> None:
    fpr, tpr = roc_curve(np.array([0.9, 0.5, 0.1]), np.array([0, 1, 0]))
    assert tpr_at_fpr(fpr, tpr, 0.01) == 0.0
    assert tpr_at_fpr(fpr, tpr, 0.5) == 1.0


def test_auc_matches_a_pairwise_count() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, size=300)
        labels[:2] = [0, 1]
        scores = rng.integers(0, 20, size=300) + labels * rng.integers(0, 5, size=300)
        members, others = scores[labels == 1], scores[labels == 0]
        wins = (members[:, None] > others[None, :]).sum()
        ties = (members[:, None] == others[None, :]).sum()
        expected = (wins + ties / 2) / (len(members) * len(others))
        assert roc_auc(scores, labels) == pytest.approx(expected, abs=1e-12)


def test_curve_ends_are_fixed_and_monotone() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=100)
    labels = rng.integers(0, 2, size=100)
    fpr, tpr = roc_curve(scores, labels)
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0]])
def test_one_class_is_refused(labels: list[int]) -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_curve(np.array([0.1, 0.2, 0.3]), np.array(labels))


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="same length"):
        roc_auc(np.array([0.1, 0.2, 0.3]), np.array([0, 1]))


def test_labels_must_be_binary() -> None:
    with pytest.raises(ValueError, match="0 .non-member. or 1"):
        roc_curve(np.array([0.1, 0.2]), np.array([0, 2]))
