"""Centered clipping's tau schedule, DnC, FLAME and signSGD's majority vote return the
hand-computed answers on crafted updates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedrobust.errors import FedrobustError
from fedrobust.robust.config import DefenseConfig
from fedrobust.robust.defenses import create_defense
from fedrobust.robust.defenses.centered_clip import theory_tau
from fedrobust.robust.defenses.dnc import outlier_scores
from fedrobust.robust.defenses.flame import cosine_distances, majority_cluster
from tests.config.test_compat import poisoned
from tests.robust.test_defenses import ATTACKERS, BENIGN, updates


def rule(name: str, f: int = 0, seed: int = 0, **options: object):
    return create_defense(DefenseConfig(name=name, **options), f, seed=seed)  # type: ignore[arg-type]


def test_theory_tau_is_the_papers_radius() -> None:
    assert theory_tau(1.0, 1, 4) == pytest.approx(4.0)  # delta 1/4: 4 sqrt(0.75 / 0.75)
    assert theory_tau(2.0, 1, 10) == pytest.approx(8 * math.sqrt(0.9 / 0.3))
    assert theory_tau(1.0, 0, 4) == math.inf


def test_centered_clip_theory_schedule_clips_at_the_papers_radius() -> None:
    # centre 0, distances [1, 1, 1, 13]: rho = 1, tau = 4; v = mean(1, 1, -1, 13 * 4 / 13)
    out = rule("centered_clip", 1, tau_schedule="theory", iterations=1).combine(
        updates(np.array([[1.0], [1.0], [-1.0], [13.0]]))
    )
    assert out.delta == pytest.approx([1.25])
    assert out.detail["tau"] == pytest.approx(4.0)
    assert out.detail["clipped_share"] == pytest.approx(0.25)


def test_centered_clip_theory_schedule_without_attackers_is_the_mean() -> None:
    rows = np.vstack([BENIGN, ATTACKERS])
    out = rule("centered_clip", 0, tau_schedule="theory", iterations=1).combine(updates(rows))
    assert out.delta == pytest.approx(rows.mean(axis=0))
    assert out.detail["tau"] is None


def test_centered_clip_schedule_fields_are_checked() -> None:
    attack = {"kind": "sign_flip", "count": 2}
    with pytest.raises(FedrobustError, match="needs a tau"):
        poisoned(10, attack, {"name": "centered_clip", "tau_schedule": "fixed"})
    with pytest.raises(FedrobustError, match="drop tau"):
        poisoned(10, attack, {"name": "centered_clip", "tau_schedule": "theory", "tau": 1.0})


def test_dnc_scores_are_squared_projections_on_the_top_singular_vector() -> None:
    scores = outlier_scores(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]))
    assert scores == pytest.approx([1.0, 1.0, 0.0])


def test_dnc_removes_the_attackers_and_averages_the_rest() -> None:
    out = rule("dnc", 2).combine(updates(np.vstack([BENIGN, ATTACKERS])))
    assert out.flagged == [5, 6]
    assert out.delta == pytest.approx([0.5, 0.5])


def test_dnc_keeps_only_what_every_iteration_kept() -> None:
    # Coordinate 0 shows client 3 as the outlier, coordinate 1 client 2: subsamples of one
    # coordinate each, intersected over enough iterations, drop both.
    rows = np.array([[0.0, 0.0], [0.1, 0.1], [0.0, 9.0], [9.0, 0.0]])
    out = rule("dnc", 1, seed=1, subsample=1, iterations=8, reproducible=True).combine(
        updates(rows)
    )
    assert out.flagged == [2, 3]
    assert out.delta == pytest.approx([0.05, 0.05])


def fan(degrees: list[float], norms: list[float]) -> np.ndarray:
    """2-d updates at the given angles and norms."""
    angles = np.radians(degrees)
    return np.array(norms)[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_flame_cosine_distances_and_majority_cluster() -> None:
    d = cosine_distances(np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]))
    assert d == pytest.approx(np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))
    rows = np.vstack([fan([40, 43, 46, 49], [1, 2, 3, 4]), fan([135, 150], [9, 9])])
    assert majority_cluster(cosine_distances(rows)) == [0, 1, 2, 3]


def test_flame_keeps_the_majority_cluster_clipped_to_the_median_norm() -> None:
    benign = fan([40, 42.5, 45, 47.5, 50], [1, 2, 3, 4, 5])
    rows = np.vstack([benign, fan([135, 150], [14, 28])])
    out = rule("flame", noise_lambda=0.0).combine(updates(rows))
    assert out.flagged == [5, 6]
    norms = np.linalg.norm(rows, axis=1)
    bound = np.median(norms)  # 4, of the fourth benign update
    assert out.detail["clip_norm"] == pytest.approx(bound)
    clipped = benign * np.minimum(1, bound / norms[:5])[:, None]
    assert out.delta == pytest.approx(clipped.mean(axis=0))


def test_flame_noise_is_lambda_times_the_median_norm_and_secret_by_default() -> None:
    rows = np.ones((5, 20_000)) + np.linspace(0, 0.1, 5)[:, None]
    clean = rule("flame", noise_lambda=0.0).combine(updates(rows)).delta
    noisy = rule("flame", noise_lambda=0.01).combine(updates(rows))
    bound = np.median(np.linalg.norm(rows, axis=1))
    assert noisy.detail["noise_std"] == pytest.approx(0.01 * bound)
    assert np.std(noisy.delta - clean) == pytest.approx(0.01 * bound, rel=0.05)
    again = rule("flame", noise_lambda=0.01).combine(updates(rows)).delta
    assert not np.allclose(again, noisy.delta)  # secret source: fresh draws
    same = [
        rule("flame", seed=4, noise_lambda=0.01, reproducible=True).combine(updates(rows)).delta
        for _ in range(2)
    ]
    assert np.array_equal(*same)


def test_signsgd_mv_steps_server_lr_along_the_majority_sign() -> None:
    rows = np.array([[1.0, -2.0, 0.0, 1.0], [3.0, -1.0, 0.0, -1.0], [-5.0, 4.0, 1.0, 0.0]])
    out = rule("signsgd_mv", server_lr=0.5).combine(updates(rows, [1, 1, 100]))
    assert out.delta == pytest.approx([0.5, -0.5, 0.5, 0.0])  # a tie moves nothing


@pytest.mark.parametrize(
    ("defense", "field"),
    [
        ({"name": "dnc", "filter_factor": 5.0}, "defense.filter_factor"),  # removes 10 of 10
        ({"name": "median", "reproducible": True}, "defense.reproducible"),  # draws nothing
        ({"name": "flame", "subsample": 5}, "defense.subsample"),
    ],
)
def test_new_rules_refuse_what_does_not_apply(defense: dict, field: str) -> None:
    with pytest.raises(FedrobustError) as info:
        poisoned(10, {"kind": "sign_flip", "count": 2}, defense)
    assert info.value.where == field


def test_secure_aggregation_refuses_every_new_rule() -> None:
    for name in ("dnc", "flame", "signsgd_mv"):
        with pytest.raises(FedrobustError, match="individual updates"):
            from fedrobust.scenario import parse_scenario

            parse_scenario(
                {
                    "name": "s",
                    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 6}},
                    "privacy": {"secure_aggregation": {"enabled": True}},
                    "defense": {"name": name},
                }
            )
