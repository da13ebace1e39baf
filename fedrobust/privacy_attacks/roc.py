"""ROC curves for membership inference: higher score = predicted member (label 1).

The area under the curve summarises an attack on average; Carlini et al. 2022,
"Membership Inference Attacks From First Principles" (https://arxiv.org/abs/2112.03570),
argue that what matters is the true-positive rate at a low false-positive rate (an attack
that confidently identifies a few members), reported here by :func:`tpr_at_fpr`.
"""

from __future__ import annotations

import numpy as np


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 and labels as bool, both 1-D of one length, both classes present."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"scores and labels must be 1-D, got shapes {scores.shape} and {labels.shape}"
        )
    if len(scores) != len(labels):
        raise ValueError(
            f"scores and labels must have the same length, got {len(scores)} and {len(labels)}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError(
            "a ROC curve needs both classes: labels must contain members (1) and non-members (0)"
        )
    return scores, labels


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the test ``score >= threshold`` over all thresholds.

    Parameters
    ----------
    scores : np.ndarray
        (N,) attack scores; higher means "member".
    labels : np.ndarray
        (N,) 1 for members, 0 for non-members; both must occur.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(fpr, tpr)``, non-decreasing, from (0, 0) (threshold above every score) to
        (1, 1) (threshold at the lowest score), one point per distinct score: examples
        with tied scores are accepted together, in one step.
    """
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    true_positives = np.cumsum(sorted_labels)
    false_positives = np.cumsum(~sorted_labels)
    # The last index of each run of tied scores: the point after accepting the whole run.
    run_ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    run_ends = np.append(run_ends, len(sorted_scores) - 1)
    tpr = np.concatenate([[0.0], true_positives[run_ends] / true_positives[-1]])
    fpr = np.concatenate([[0.0], false_positives[run_ends] / false_positives[-1]])
    return fpr, tpr


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve, by the trapezoid rule over :func:`roc_curve`.

    It equals the Mann-Whitney probability that a random member scores above a random
    non-member, ties counted 1/2: 1 separates perfectly, 0.5 is chance.

    Parameters
    ----------
    scores : np.ndarray
        (N,) attack scores; higher means "member".
    labels : np.ndarray
        (N,) 1 for members, 0 for non-members; both must occur.

    Returns
    -------
    float
        The area, in [0, 1].
    """
    fpr, tpr = roc_curve(scores, labels)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """The highest true-positive rate among the curve's points with FPR at most ``level``.

    Carlini et al. 2022 (https://arxiv.org/abs/2112.03570) report it at 0.1% and 1% FPR.
    With N non-members the smallest non-zero FPR is 1/N, so below that level this is
    the TPR at zero false positives.

    Parameters
    ----------
    fpr, tpr : np.ndarray
        A curve from :func:`roc_curve`.
    level : float
        The FPR allowed, in [0, 1].

    Returns
    -------
    float
        The TPR, in [0, 1].
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if fpr.shape != tpr.shape or fpr.ndim != 1 or len(fpr) == 0:
        raise ValueError(
            f"fpr and tpr must be 1-D, non-empty, of one length, got {fpr.shape} and {tpr.shape}"
        )
    if not 0 <= level <= 1:
        raise ValueError(f"level must be in [0, 1], got {level}")
    allowed = fpr <= level
    if not allowed.any():
        return 0.0
    return float(tpr[allowed].max())
