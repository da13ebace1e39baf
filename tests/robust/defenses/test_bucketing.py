"""Bucketing averages random buckets of updates before the rule, against hand-computed
answers; its refusals name ``defense.bucketing``."""

from __future__ import annotations

import numpy as np
import pytest

from fedrobust.errors import FedrobustError
from fedrobust.robust.config import DefenseConfig
from fedrobust.robust.defenses import Updates, create_defense
from fedrobust.robust.defenses.bucketing import Bucketing, bucket_means
from tests.config.test_compat import poisoned
from tests.robust.test_defenses import ATTACKERS, BENIGN, updates


class FixedOrder:
    """Stands in for a generator: ``permutation`` returns the given order."""

    def __init__(self, order: list[int]) -> None:
        self.order = np.array(order)

    def permutation(self, n: int) -> np.ndarray:
        assert n == len(self.order)
        return self.order


def bucketed(name: str, size: int, f: int = 0, order: list[int] | None = None, **kw: object):
    cfg = DefenseConfig(name=name, bucketing=size, **kw)  # type: ignore[arg-type]
    rule = create_defense(cfg, f, seed=7)
    assert isinstance(rule, Bucketing)
    if order is not None:
        rule.rng = lambda: FixedOrder(order)  # type: ignore[method-assign, assignment]
    return rule


def test_bucket_means_average_the_permuted_updates_and_the_last_bucket_holds_the_rest() -> None:
    rows = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 4.0], [10.0, 0.0], [1.0, 1.0]])
    ups = Updates([10, 11, 12, 13, 14], rows, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    means, members = bucket_means(ups, np.array([4, 0, 3, 1, 2]), 2)
    assert means.deltas.tolist() == [[0.5, 0.5], [6.0, 0.0], [4.0, 4.0]]
    assert means.weights.tolist() == [6.0, 6.0, 3.0]
    assert means.ids == [0, 1, 2]
    assert members == [[14, 10], [13, 11], [12]]


@pytest.mark.parametrize(
    ("name", "f", "options"),
    [("median", 0, {}), ("trimmed_mean", 0, {"beta": 0.3}), ("multikrum", 2, {}),
     ("krum", 2, {}), ("dnc", 2, {})],
)  # fmt: skip
def test_buckets_of_one_leave_the_rule_unchanged(name: str, f: int, options: dict) -> None:
    rows = np.vstack([BENIGN, ATTACKERS])
    plain = create_defense(DefenseConfig(name=name, **options), f).combine(updates(rows))
    out = bucketed(name, 1, f, [6, 2, 0, 5, 1, 3, 4], **options).combine(updates(rows))
    assert out.delta == pytest.approx(plain.delta)
    assert out.flagged == plain.flagged


def test_bucketing_makes_the_median_of_non_iid_clients_their_mean() -> None:
    # Two honest groups (at 0 and at 2: mean 1) and two attackers at -10. The median of
    # the eight sits in the lower honest group; bucket means of one client from each
    # group are 1, and the attackers spoil a single bucket.
    rows = np.array([[0.0], [0.0], [0.0], [2.0], [2.0], [2.0], [-10.0], [-10.0]])
    plain = create_defense(DefenseConfig(name="median"), 2).combine(updates(rows))
    assert plain.delta == pytest.approx([0.0])
    out = bucketed("median", 2, 2, [0, 3, 1, 4, 2, 5, 6, 7]).combine(updates(rows))
    assert out.delta == pytest.approx([1.0])  # median of [1, 1, 1, -10]
    assert out.detail["buckets"] == 4


def test_random_buckets_bring_the_median_closer_to_the_honest_mean_on_average() -> None:
    rows = np.array([[0.0]] * 6 + [[2.0]] * 6 + [[-10.0]] * 2)  # median of the 14: 0
    errors: list[float] = []
    for seed in range(200):
        cfg = DefenseConfig(name="median", bucketing=2, reproducible=True)
        errors.append(abs(create_defense(cfg, 2, seed=seed).combine(updates(rows)).delta[0] - 1))
    assert np.mean(errors) < 0.5  # the plain median is off by 1 (measured: 0.27)


def test_a_flagged_bucket_flags_its_clients() -> None:
    rows = np.vstack([BENIGN, BENIGN[:1], ATTACKERS, ATTACKERS])  # 10 updates
    order = [0, 1, 2, 3, 4, 5, 6, 8, 7, 9]
    out = bucketed("multikrum", 2, 1, order, num_selected=3).combine(updates(rows))
    assert out.flagged == [6, 7, 8, 9]  # buckets {6, 8} and {7, 9}: all attackers
    assert out.detail["selected"] == [0, 1, 2, 3, 4, 5]


def test_the_permutation_is_secret_unless_reproducible() -> None:
    rows = np.arange(40.0).reshape(20, 2) ** 2

    def run(reproducible: bool, seed: int) -> list[float]:
        cfg = DefenseConfig(name="dnc", bucketing=3, reproducible=reproducible, subsample=1)
        return create_defense(cfg, 1, seed=seed).combine(updates(rows)).detail["selected"]

    assert run(True, 3) == run(True, 3)
    assert len({tuple(run(False, 3)) for _ in range(8)}) > 1


def test_bucketing_state_carries_the_rule_state_and_the_draw_count() -> None:
    first = bucketed("centered_clip", 2, tau=0.1, iterations=1, tau_schedule="fixed")
    first.combine(updates(np.array([[1.0, 0.0], [1.0, 0.0]])))
    state = first.state_dict()
    assert state["bucket_draws"] == 1 and state["center"] == pytest.approx([0.1, 0.0])
    second = bucketed("centered_clip", 2, tau=0.1, iterations=1, tau_schedule="fixed")
    second.load_state_dict(state)
    assert second.draws == 1
    assert second.rule.center == pytest.approx([0.1, 0.0])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("defense", "words"),
    [
        ({"name": "fedavg", "bucketing": 2}, "no rule"),
        ({"name": "fltrust", "bucketing": 2}, "root set"),
        ({"name": "median", "bucketing": 11}, "larger than the 10"),
        ({"name": "median", "bucketing": 3}, "majority"),  # 4 buckets, 2 spoiled
        ({"name": "krum", "bucketing": 2}, "at least 7 clients"),  # 5 buckets < 2f + 3
    ],
)
def test_bucketing_is_refused_where_it_makes_no_sense(defense: dict, words: str) -> None:
    with pytest.raises(FedrobustError) as info:
        poisoned(10, {"kind": "sign_flip", "count": 2}, defense)
    assert words in info.value.what


def test_bucketing_is_accepted_for_update_rules() -> None:
    for name in ("median", "trimmed_mean", "dnc", "flame", "centered_clip", "signsgd_mv"):
        extra = {"beta": 0.4} if name == "trimmed_mean" else {}
        poisoned(10, {"kind": "sign_flip", "count": 2}, {"name": name, "bucketing": 2, **extra})
