"""Each aggregation rule returns the known answer on crafted updates."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fedrobust.errors import FedrobustError
from fedrobust.federation.server_hooks import ServerSetup
from fedrobust.robust.config import DefenseConfig
from fedrobust.robust.defenses import DEFENSES, Updates, create_defense
from fedrobust.robust.server import DefenseHook, defend, root_epochs
from fedrobust.scenario import parse_scenario
from tests.federation.test_screening import GLOBAL
from tests.federation.test_screening import reply as flower_reply

BENIGN = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
ATTACKERS = np.array([[100.0, 100.0], [-100.0, 100.0]])


def updates(rows: np.ndarray, weights: list[float] | None = None, **kw: object) -> Updates:
    w = np.ones(len(rows)) if weights is None else np.array(weights, dtype=float)
    return Updates(list(range(len(rows))), np.asarray(rows, dtype=float), w, **kw)  # type: ignore[arg-type]


def reply(node: int, row: np.ndarray) -> object:
    """A Flower reply whose update (against ``GLOBAL``) starts with ``row``."""
    w = np.zeros((2, 3), np.float32)
    w[0, : len(row)] = row
    return flower_reply(node, {"w": w, "b": np.zeros(3, np.float32)})


def rule(name: str, num_malicious: int = 0, **options: object):
    return create_defense(DefenseConfig(name=name, **options), num_malicious)


def test_every_named_rule_is_registered_and_unknown_names_fail() -> None:
    assert DEFENSES.names() == sorted(
        ["bulyan", "centered_clip", "dnc", "flame", "fltrust", "krum", "median",
         "multikrum", "norm_bound", "signsgd_mv", "trimmed_mean", "zeno"]
    )  # fmt: skip
    with pytest.raises(FedrobustError, match="defense.name.*unknown defense 'nope'"):
        DEFENSES.get("nope")


def test_krum_picks_the_centre_of_the_benign_cluster() -> None:
    out = rule("krum", 2).combine(updates(np.vstack([BENIGN, ATTACKERS])))
    assert out.delta == pytest.approx([0.5, 0.5])
    assert out.flagged == [0, 1, 2, 3, 5, 6]


def test_multikrum_averages_the_benign_updates_and_flags_the_attackers() -> None:
    out = rule("multikrum", 2).combine(updates(np.vstack([BENIGN, ATTACKERS])))
    assert out.delta == pytest.approx([0.5, 0.5])
    assert out.flagged == [5, 6]
    assert out.detail["selected"] == [0, 1, 2, 3, 4]


def test_bulyan_returns_the_benign_value_when_honest_clients_agree() -> None:
    rows = np.vstack([np.tile([0.3, -0.7], (9, 1)), ATTACKERS])  # n = 11 = 4f + 3
    out = rule("bulyan", 2).combine(updates(rows))
    assert out.delta == pytest.approx([0.3, -0.7])
    assert set(out.flagged) >= {9, 10}


def test_bulyan_below_4f_plus_3_gives_no_aggregate() -> None:
    out = rule("bulyan", 2).combine(updates(np.vstack([BENIGN, ATTACKERS])))
    assert out.delta is None
    assert "needs 11 updates, got 7" in out.detail["error"]


def test_median_is_coordinate_wise_and_ignores_weights() -> None:
    rows = np.array([[1.0, 10.0], [2.0, -5.0], [900.0, 0.0]])
    out = rule("median").combine(updates(rows, [1, 1, 1000]))
    assert out.delta == pytest.approx([2.0, 0.0])


def test_trimmed_mean_drops_beta_at_each_end() -> None:
    rows = np.arange(10.0).reshape(10, 1)
    rows[9] = 1000.0
    out = rule("trimmed_mean", beta=0.2).combine(updates(rows))
    assert out.delta == pytest.approx([np.mean([2, 3, 4, 5, 6, 7])])


def test_norm_bound_clips_each_update_to_the_bound_and_reports_the_clipped_share() -> None:
    out = rule("norm_bound", clip_norm=1.0).combine(updates(np.array([[3.0, 4.0], [0.3, 0.4]])))
    assert out.delta == pytest.approx([(0.6 + 0.3) / 2, (0.8 + 0.4) / 2])
    assert out.flagged == [] and out.detail["clipped_share"] == 0.5
    default = rule("norm_bound").combine(updates(np.array([[1.0, 0], [2.0, 0], [30.0, 0]])))
    assert default.detail["clip_norm"] == 2.0  # the median norm
    assert default.delta == pytest.approx([(1 + 2 + 2) / 3, 0.0])


def test_centered_clip_with_a_huge_radius_is_the_mean_and_otherwise_resists_outliers() -> None:
    rows = np.vstack([BENIGN, ATTACKERS])
    wide = rule("centered_clip", tau=1e9, iterations=1).combine(updates(rows))
    assert wide.delta == pytest.approx(rows.mean(axis=0))
    tight = rule("centered_clip", iterations=5).combine(updates(rows))
    assert np.linalg.norm(tight.delta - [0.5, 0.5]) < 0.5
    assert tight.flagged == [] and tight.detail["clipped_share"] >= 2 / 7


def test_centered_clip_carries_its_centre_across_rounds_through_state_dict() -> None:
    first = rule("centered_clip", tau=0.1, iterations=1)
    first.combine(updates(np.array([[1.0, 0.0], [1.0, 0.0]])))
    second = rule("centered_clip", tau=0.1, iterations=1)
    second.load_state_dict(first.state_dict())
    again = second.combine(updates(np.array([[1.0, 0.0], [1.0, 0.0]])))
    assert again.delta == pytest.approx([0.2, 0.0])  # 0.1 from each of two rounds


def test_fltrust_trusts_by_cosine_and_rescales_to_the_root_norm() -> None:
    rows = np.array([[2.0, 0.0], [-1.0, 0.0], [0.0, 5.0]])
    out = rule("fltrust").combine(updates(rows, reference=np.array([1.0, 0.0])))
    assert out.delta == pytest.approx([1.0, 0.0])
    assert out.flagged == [1, 2]
    assert out.detail["trust"] == {"0": 1.0, "1": 0.0, "2": 0.0}


def test_fltrust_without_a_root_update_refuses() -> None:
    with pytest.raises(ValueError, match="root update"):
        rule("fltrust").combine(updates(BENIGN))


@pytest.mark.parametrize("name", ["norm_bound", "centered_clip"])
def test_clipping_rules_report_no_precision_or_recall(name: str) -> None:
    assert not DEFENSES.get(name).selects_clients
    rows = np.vstack([BENIGN, ATTACKERS])
    replies = [reply(i, row) for i, row in enumerate(rows)]
    sampled = {i: i for i in range(len(rows))}
    cfg = {
        "name": "d",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": len(rows)}},
        "attack": {"kind": "sign_flip", "count": 2},
        "defense": {"name": name},
    }
    fed = SimpleNamespace(spec=SimpleNamespace(num_classes=10))
    hook = DefenseHook(ServerSetup(scenario=parse_scenario(cfg), fed=fed, sizes={}))  # type: ignore[arg-type]
    _, figures = hook.transform(1, replies, GLOBAL, sampled, torch.nn.Linear(2, 1))
    defense = figures["defense"]
    assert "clipped_share" in defense and 0 <= defense["clipped_share"] <= 1
    assert not {"flagged", "precision", "recall"} & set(defense)


def test_selection_rules_still_report_flagged_precision_and_recall() -> None:
    rows = np.vstack([BENIGN, ATTACKERS])
    figures = defend(rule("multikrum", 2), [reply(i, r) for i, r in enumerate(rows)], GLOBAL,
                     {i: i for i in range(len(rows))})[1]  # fmt: skip
    assert figures["flagged"] == [5, 6]


def test_fltrust_root_training_follows_the_clients_local_epochs_by_default() -> None:
    doc = {"name": "f", "data": {"dataset": "digits"}, "train": {"local_epochs": 3},
           "defense": {"name": "fltrust"}}  # fmt: skip
    assert root_epochs(parse_scenario(doc)) == 3
    doc["defense"]["root_epochs"] = 1
    assert root_epochs(parse_scenario(doc)) == 1
