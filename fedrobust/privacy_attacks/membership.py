"""Membership inference: does a trained model reveal which examples it was trained on?

Two attacks score candidate examples, higher meaning "member":

* the loss attack (Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the
  Connection to Overfitting", https://arxiv.org/abs/1709.01604): members have a lower
  loss, so the score is the negative cross-entropy;
* online LiRA (Carlini et al. 2022, "Membership Inference Attacks From First
  Principles", https://arxiv.org/abs/2112.03570): shadow models are trained on random
  halves of a pool that contains the candidates, so each candidate has shadows that saw
  it (IN) and shadows that did not (OUT); a Gaussian fitted to each side of the model's
  logit-scaled confidence gives a per-example likelihood-ratio test.

Each attack is summarised by its ROC curve (:mod:`fedrobust.privacy_attacks.roc`): the
AUC and the TPR at 0.1% and 1% FPR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import log_ndtr
from torch import nn

from fedrobust.privacy_attacks.roc import roc_auc, roc_curve, tpr_at_fpr

MIN_STD = 1e-6  # floor on a fitted standard deviation, so a Gaussian is never degenerate

TrainFn = Callable[[np.ndarray, np.ndarray, int], nn.Module]
"""``(x, y, seed) -> model``: a freshly trained model (a shadow model of LiRA)."""


def _logits(model: nn.Module, x: np.ndarray, batch_size: int) -> torch.Tensor:
    """The model's logits on ``x``, in eval mode and without gradients; the model's
    training mode is restored afterwards."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    inputs = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            batches = [model(batch) for batch in torch.split(inputs, batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(batches).to(torch.float64)


def _labels(y: np.ndarray, num_examples: int) -> torch.Tensor:
    """``y`` as an int64 tensor, checked against the number of inputs."""
    labels = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    if labels.shape != (num_examples,):
        raise ValueError(f"y must have shape ({num_examples},), got {tuple(labels.shape)}")
    return labels


def loss_scores(
    model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """The loss attack's scores: minus each example's cross-entropy loss.

    Yeom et al. 2018, https://arxiv.org/abs/1709.01604.

    Parameters
    ----------
    model : nn.Module
        A classifier on the CPU returning logits; evaluated in eval mode without
        gradients, its training mode restored afterwards.
    x : np.ndarray
        (N, *input_shape) inputs, cast to float32.
    y : np.ndarray
        (N,) integer labels.
    batch_size : int
        Examples per forward pass.

    Returns
    -------
    np.ndarray
        (N,) float64 scores; higher means "member".
    """
    if len(x) == 0:
        return np.zeros(0)
    logits = _logits(model, x, batch_size)
    labels = _labels(y, len(logits))
    losses = F.cross_entropy(logits, labels, reduction="none")
    return (-losses).numpy()


def logit_confidence(
    model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """LiRA's statistic: the logit-scaled confidence ``log(p_y / (1 - p_y))``.

    Computed stably from the logits ``z`` as ``z_y - logsumexp_{j != y} z_j``, so it stays
    finite where ``p_y`` rounds to 1 (Carlini et al. 2022, https://arxiv.org/abs/2112.03570,
    Section IV-B: the scaling makes the statistic approximately Gaussian).

    Parameters
    ----------
    model : nn.Module
        A classifier on the CPU returning logits (at least two classes); evaluated in
        eval mode without gradients, its training mode restored afterwards.
    x : np.ndarray
        (N, *input_shape) inputs, cast to float32.
    y : np.ndarray
        (N,) integer labels.
    batch_size : int
        Examples per forward pass.

    Returns
    -------
    np.ndarray
        (N,) float64 statistics; higher means "more confident in the true label".
    """
    if len(x) == 0:
        return np.zeros(0)
    logits = _logits(model, x, batch_size)
    labels = _labels(y, len(logits))
    if logits.shape[1] < 2:
        raise ValueError(f"the model must output at least 2 logits, got {logits.shape[1]}")
    rows = torch.arange(len(labels))
    true_logit = logits[rows, labels]
    others = logits.clone()
    others[rows, labels] = -math.inf
    return (true_logit - torch.logsumexp(others, dim=1)).numpy()


def shadow_masks(num_pool: int, num_shadows: int, rng: np.random.Generator) -> np.ndarray:
    """Which pool examples each shadow model trains on: a balanced random half.

    As in Carlini et al. 2022 (https://arxiv.org/abs/2112.03570), each example picks at
    random the shadows that train on it: exactly ``num_shadows / 2`` of them when
    ``num_shadows`` is even; for an odd count, ``floor`` or ``ceil`` of half, by a fair
    coin per example. Every shadow then trains on about half the pool.

    Parameters
    ----------
    num_pool : int
        Examples in the pool.
    num_shadows : int
        Shadow models, at least 1.
    rng : np.random.Generator
        The only source of randomness.

    Returns
    -------
    np.ndarray
        (num_shadows, num_pool) bool; ``[k, i]`` is True when shadow ``k`` trains on
        example ``i``.
    """
    if num_pool < 0:
        raise ValueError(f"num_pool must be non-negative, got {num_pool}")
    if num_shadows < 1:
        raise ValueError(f"num_shadows must be at least 1, got {num_shadows}")
    # A random ranking of the shadows per example (column); the lowest ranks take it.
    ranks = np.argsort(rng.random((num_shadows, num_pool)), axis=0).argsort(axis=0)
    ins = np.full(num_pool, num_shadows // 2)
    if num_shadows % 2 == 1:
        ins += rng.integers(0, 2, size=num_pool)
    return ranks < ins


def _fit(shadow: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-candidate Gaussian fits to the chosen shadow statistics.

    Returns the per-candidate means (NaN where none is chosen), the per-candidate standard
    deviations (ddof 1; the pooled one where a candidate has fewer than two values) and
    the pooled standard deviation: the spread of every chosen value around its own
    candidate's mean, with one degree of freedom taken per candidate. Without any
    repeated candidate it falls back to the spread of all chosen values. All floored at
    ``MIN_STD``.
    """
    counts = chosen.sum(axis=0)
    sums = np.where(chosen, shadow, 0.0).sum(axis=0)
    means = np.full(shadow.shape[1], np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    squares = np.where(chosen, (shadow - np.nan_to_num(means)) ** 2, 0.0).sum(axis=0)
    degrees = int(counts.sum() - (counts > 0).sum())
    if degrees > 0:
        pooled = math.sqrt(squares.sum() / degrees)
    elif counts.sum() > 0:
        pooled = float(np.std(shadow[chosen]))
    else:
        pooled = MIN_STD
    pooled = max(pooled, MIN_STD)
    stds = np.full(shadow.shape[1], pooled)
    np.sqrt(squares / np.maximum(counts - 1, 1), out=stds, where=counts >= 2)
    return means, np.maximum(stds, MIN_STD), pooled


def _log_normal(t: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Gaussian log-density."""
    return -np.log(std) - 0.5 * math.log(2 * math.pi) - 0.5 * ((t - mean) / std) ** 2


def lira_scores(
    target: np.ndarray, shadow: np.ndarray, inside: np.ndarray, *, fixed_variance: bool = True
) -> np.ndarray:
    """Online LiRA: a per-candidate likelihood-ratio test of IN against OUT.

    Carlini et al. 2022, "Membership Inference Attacks From First Principles",
    https://arxiv.org/abs/2112.03570, Algorithm 1. For each candidate, Gaussians are
    fitted to the statistics of the shadows that trained on it (IN) and of those that did
    not (OUT); the score is ``log N(t; mu_in, s_in) - log N(t; mu_out, s_out)`` at the
    target model's statistic ``t``.

    A candidate without any IN shadow gets the offline one-sided test against OUT,
    ``-log P[Z >= t]`` with ``Z ~ N(mu_out, s_out)`` (the paper's offline attack, as a log
    p-value: large when ``t`` is improbably high for a non-member); one without any OUT
    shadow gets ``log P[Z <= t]`` with ``Z ~ N(mu_in, s_in)`` (very negative when ``t`` is
    improbably low for a member). Both grow with ``t`` like the likelihood ratio, but
    are on another scale: with balanced masks (:func:`shadow_masks`) and at least two
    shadows no candidate needs them.

    Parameters
    ----------
    target : np.ndarray
        (N,) the target model's statistic on each candidate (e.g.
        :func:`logit_confidence`).
    shadow : np.ndarray
        (S, N) the shadow models' statistics on the candidates, S >= 1.
    inside : np.ndarray
        (S, N) bool: shadow ``k`` trained on candidate ``i``.
    fixed_variance : bool
        One standard deviation for all IN fits and one for all OUT fits, pooled over
        the candidates (each value around its own candidate's mean): the paper's choice
        with few shadows. Otherwise each candidate's own (ddof 1), the pooled one where
        a candidate has fewer than two values on that side.

    Returns
    -------
    np.ndarray
        (N,) float64 scores; higher means "member".
    """
    target = np.asarray(target, dtype=np.float64)
    shadow = np.asarray(shadow, dtype=np.float64)
    inside = np.asarray(inside, dtype=bool)
    if target.ndim != 1:
        raise ValueError(f"target must be 1-D, got shape {target.shape}")
    if shadow.ndim != 2 or shadow.shape[1] != len(target) or shadow.shape[0] < 1:
        raise ValueError(f"shadow must have shape (S >= 1, {len(target)}), got {shadow.shape}")
    if inside.shape != shadow.shape:
        raise ValueError(f"inside must have shape {shadow.shape}, got {inside.shape}")
    if not (np.isfinite(target).all() and np.isfinite(shadow).all()):
        raise ValueError("target and shadow statistics must be finite")

    mean_in, std_in, pooled_in = _fit(shadow, inside)
    mean_out, std_out, pooled_out = _fit(shadow, ~inside)
    if fixed_variance:
        std_in = np.full(len(target), pooled_in)
        std_out = np.full(len(target), pooled_out)

    has_in = inside.any(axis=0)
    has_out = (~inside).any(axis=0)
    scores = np.empty(len(target))
    both = has_in & has_out
    scores[both] = _log_normal(target[both], mean_in[both], std_in[both]) - _log_normal(
        target[both], mean_out[both], std_out[both]
    )
    only_out = ~has_in
    z_out = (target[only_out] - mean_out[only_out]) / std_out[only_out]
    scores[only_out] = -log_ndtr(-z_out)  # -log P[Z_out >= t]
    only_in = ~has_out
    z_in = (target[only_in] - mean_in[only_in]) / std_in[only_in]
    scores[only_in] = log_ndtr(z_in)  # log P[Z_in <= t]
    return scores


@dataclass(frozen=True)
class MembershipResult:
    """One attack's ROC curve and its summary figures.

    Attributes
    ----------
    method : str
        The attack (loss | lira).
    auc : float
        Area under the ROC curve.
    tpr_at_0_1pct : float
        TPR at 0.1% FPR.
    tpr_at_1pct : float
        TPR at 1% FPR.
    fpr, tpr : np.ndarray
        The ROC curve.
    """

    method: str
    auc: float
    tpr_at_0_1pct: float
    tpr_at_1pct: float
    fpr: np.ndarray
    tpr: np.ndarray

    def summary(self) -> dict[str, float]:
        """The figures as plain floats, ready for JSON."""
        return {
            "auc": float(self.auc),
            "tpr_at_0.1%_fpr": float(self.tpr_at_0_1pct),
            "tpr_at_1%_fpr": float(self.tpr_at_1pct),
        }


def score_result(method: str, scores: np.ndarray, labels: np.ndarray) -> MembershipResult:
    """Summarise an attack's scores (higher = member) against the true labels (1 = member)."""
    fpr, tpr = roc_curve(scores, labels)
    return MembershipResult(
        method=method,
        auc=roc_auc(scores, labels),
        tpr_at_0_1pct=tpr_at_fpr(fpr, tpr, 0.001),
        tpr_at_1pct=tpr_at_fpr(fpr, tpr, 0.01),
        fpr=fpr,
        tpr=tpr,
    )


def _pair(name: str, data: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as float32 inputs and int64 labels of one length."""
    x = np.asarray(data[0], dtype=np.float32)
    y = np.asarray(data[1], dtype=np.int64)
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{name}: x and y must have one length, got {x.shape} and {y.shape}")
    return x, y


def membership_inference(
    model: nn.Module,
    members: tuple[np.ndarray, np.ndarray],
    non_members: tuple[np.ndarray, np.ndarray],
    *,
    train_fn: TrainFn | None,
    shadow_models: int,
    seed: int,
    pool: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, MembershipResult]:
    """Attack ``model``: tell its training ``members`` from ``non_members``.

    The candidates are the members (label 1) and the non-members (label 0). The loss
    attack (Yeom et al. 2018) always runs. With a ``train_fn`` and ``shadow_models >= 2``,
    online LiRA (Carlini et al. 2022) runs too: the shadow pool is the candidates followed
    by the optional ``pool`` (the attacker's other data from the same distribution);
    shadow ``k`` is ``train_fn(x_pool[mask_k], y_pool[mask_k], seed + k)`` with the masks
    of :func:`shadow_masks` drawn from ``seed``; the statistic is
    :func:`logit_confidence`, the variance fixed (:func:`lira_scores`).

    Parameters
    ----------
    model : nn.Module
        The target classifier, on the CPU.
    members, non_members : tuple[np.ndarray, np.ndarray]
        ``(x, y)``: inputs (N, *input_shape), cast to float32, and int64 labels; neither
        may be empty.
    train_fn : TrainFn or None
        Trains a shadow model; None runs the loss attack alone.
    shadow_models : int
        How many shadows LiRA trains: 0 runs the loss attack alone, 1 is refused (a
        candidate needs an IN and an OUT shadow).
    seed : int
        Seeds the masks and, through ``seed + k``, the shadows' training.
    pool : tuple[np.ndarray, np.ndarray] or None
        Extra shadow training data, never scored.

    Returns
    -------
    dict[str, MembershipResult]
        ``{"loss": ...}``, plus ``"lira"`` when LiRA ran.
    """
    if shadow_models < 0 or shadow_models == 1:
        raise ValueError(
            f"shadow_models must be 0 (loss attack alone) or at least 2, got {shadow_models}"
        )
    x_in, y_in = _pair("members", members)
    x_out, y_out = _pair("non_members", non_members)
    if len(x_in) == 0 or len(x_out) == 0:
        raise ValueError("membership inference needs at least one member and one non-member")
    if x_in.shape[1:] != x_out.shape[1:]:
        raise ValueError(
            f"members and non-members differ in input shape: {x_in.shape} and {x_out.shape}"
        )
    x = np.concatenate([x_in, x_out])
    y = np.concatenate([y_in, y_out])
    labels = np.concatenate([np.ones(len(x_in), dtype=np.int64), np.zeros(len(x_out), np.int64)])

    results = {"loss": score_result("loss", loss_scores(model, x, y), labels)}
    if train_fn is None or shadow_models == 0:
        return results

    x_pool, y_pool = x, y
    if pool is not None:
        x_extra, y_extra = _pair("pool", pool)
        x_pool = np.concatenate([x, x_extra])
        y_pool = np.concatenate([y, y_extra])
    masks = shadow_masks(len(x_pool), shadow_models, np.random.default_rng(seed))
    shadow = np.empty((shadow_models, len(x)))
    for k in range(shadow_models):
        shadow_model = train_fn(x_pool[masks[k]], y_pool[masks[k]], seed + k)
        shadow[k] = logit_confidence(shadow_model, x, y)
    target = logit_confidence(model, x, y)
    scores = lira_scores(target, shadow, masks[:, : len(x)], fixed_variance=True)
    results["lira"] = score_result("lira", scores, labels)
    return results
