"""Zeno scores each update by the root-set loss it leaves, and keeps the n - f best
(hand-computed on a quadratic loss; then through the server hook on a real model)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from fedrobust.errors import FedrobustError
from fedrobust.federation.server_hooks import ServerSetup
from fedrobust.robust.config import DefenseConfig
from fedrobust.robust.defenses import create_defense
from fedrobust.robust.defenses.root import root_probe
from fedrobust.robust.defenses.zeno import descendant_scores
from fedrobust.robust.server import DefenseHook
from fedrobust.scenario import parse_scenario
from fedrobust.train import evaluate
from tests.config.test_compat import poisoned
from tests.federation.test_screening import GLOBAL, reply
from tests.robust.test_defenses import updates

TARGET = np.array([1.0, 2.0])


def quadratic(delta: np.ndarray) -> float:
    """A root-set loss whose minimum is the update TARGET: ||delta - TARGET||^2."""
    return float(np.sum((delta - TARGET) ** 2))


def zeno(f: int, rho: float = 0.0, step: float | None = 1.0):
    return create_defense(DefenseConfig(name="zeno", rho=rho, step=step), f)  # type: ignore[arg-type]


def test_zeno_drops_the_updates_that_raise_the_root_loss_and_averages_the_rest() -> None:
    # L(w) = 5; L(w + d): TARGET -> 0, TARGET / 2 -> 1.25, -TARGET (sign flip) -> 20,
    # 2 * TARGET -> 5; scores 5, 3.75, -15, 0
    rows = np.array([TARGET, TARGET / 2, -TARGET, 2 * TARGET])
    out = zeno(1).combine(updates(rows, weights=[1.0, 3.0, 1.0, 4.0], probe=quadratic))
    assert out.flagged == [2]
    assert out.detail["score"] == {"0": 5.0, "1": 3.75, "2": -15.0, "3": 0.0}
    # the three kept, weighted by example counts: (1 * T + 3 * T/2 + 4 * 2T) / 8
    assert out.delta == pytest.approx(TARGET * (1 + 1.5 + 8) / 8)
    out = zeno(2).combine(updates(rows, weights=[1.0, 3.0, 1.0, 4.0], probe=quadratic))
    assert out.flagged == [2, 3]
    assert out.delta == pytest.approx(TARGET * (1 + 1.5) / 4)


def test_zeno_size_penalty_ranks_a_large_update_below_a_small_one() -> None:
    # 2 * TARGET and 0 both leave L = 5 (score 0); rho * ||d||^2 = 0.1 * 20 penalises the large one
    rows = np.array([2 * TARGET, np.zeros(2)])
    assert descendant_scores(5.0, np.array([5.0, 5.0]), rows, 0.1) == pytest.approx([-2.0, 0.0])
    out = zeno(1, rho=0.1).combine(updates(rows, probe=quadratic))
    assert out.flagged == [0]
    assert out.delta == pytest.approx([0.0, 0.0])


def test_zeno_probes_a_step_of_one_nth_of_each_update_by_default() -> None:
    probed: list[np.ndarray] = []

    def probe(delta: np.ndarray) -> float:
        probed.append(delta)
        return quadratic(delta)

    rows = np.array([TARGET, -TARGET, 2 * TARGET, TARGET / 2])
    out = zeno(1, step=None).combine(updates(rows, probe=probe))
    assert np.allclose(probed[0], 0) and np.allclose(probed[1:], rows / 4)
    # L = ||d / 4 - T||^2: scores 5 - 5 * 9/16, 5 - 5 * 25/16, 5 - 5 / 4, 5 - 5 * 49/64
    assert out.detail["score"] == pytest.approx(
        {"0": 35 / 16, "1": -45 / 16, "2": 3.75, "3": 75 / 64}
    )
    assert out.flagged == [1]


def test_zeno_keeps_one_update_when_fewer_reply_than_it_drops() -> None:
    rows = np.array([TARGET, -TARGET])
    out = zeno(3).combine(updates(rows, probe=quadratic))
    assert out.flagged == [1]
    assert out.delta == pytest.approx(TARGET)


def test_an_update_whose_root_loss_overflows_ranks_last_and_is_written_as_null() -> None:
    def probe(delta: np.ndarray) -> float:
        return float("inf") if delta[0] > 100 else quadratic(delta)

    rows = np.array([TARGET, TARGET / 2, [1e6, 0.0]])
    out = zeno(1).combine(updates(rows, probe=probe))
    assert out.flagged == [2]
    assert out.detail["score"]["2"] is None


def test_zeno_without_a_root_loss_refuses() -> None:
    with pytest.raises(ValueError, match="root-set loss"):
        zeno(1).combine(updates(np.array([TARGET])))


def test_zeno_fields_are_checked_against_the_round() -> None:
    attack = {"kind": "sign_flip", "count": 2}
    with pytest.raises(FedrobustError, match="defense.num_malicious.*leaving none"):
        poisoned(4, attack, {"name": "zeno", "num_malicious": 4})
    with pytest.raises(FedrobustError, match="defense.bucketing.*root"):
        poisoned(10, attack, {"name": "zeno", "bucketing": 2})
    with pytest.raises(FedrobustError, match="defense.rho"):
        poisoned(10, attack, {"name": "median", "rho": 0.1})


@pytest.mark.parametrize("name", ["zeno", "fltrust"])
def test_a_root_set_rule_without_validation_data_is_refused_naming_the_field(name: str) -> None:
    doc = {"name": "v", "data": {"dataset": "digits", "val_fraction": 0.0},
           "defense": {"name": name}}  # fmt: skip
    with pytest.raises(FedrobustError, match="data.val_fraction.*root set"):
        parse_scenario(doc)


class Linear23(nn.Module):
    """The model of the screening tests' GLOBAL record: logits = x @ w + b, 2 -> 3."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2, 3))
        self.b = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w + self.b


def test_root_probe_is_the_loss_of_the_moved_model_and_leaves_the_global_untouched() -> None:
    model = Linear23()
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    y = np.array([0, 1, 2])
    probe = root_probe(model, GLOBAL, (x, y), 3)
    assert probe(np.zeros(9)) == pytest.approx(np.log(3.0))  # all logits 0
    delta = np.arange(9, dtype=float) / 10
    moved = Linear23()
    moved.load_state_dict(
        {"w": torch.tensor(delta[:6].reshape(2, 3)), "b": torch.tensor(delta[6:])}
    )
    assert probe(delta) == pytest.approx(evaluate(moved, x, y, 3).loss)
    assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())


def test_the_server_hook_gives_zeno_its_root_set_and_flags_the_sign_flipper() -> None:
    # root set: class 0 at x = (1, 0), class 1 at x = (0, 1); the honest updates raise
    # w[0, 0] and w[1, 1] (lowering the root loss), the attacker sends their negation
    x = np.array([[1.0, 0.0], [0.0, 1.0]] * 4, np.float32)
    y = np.array([0, 1] * 4)
    client = SimpleNamespace(x_val=x, y_val=y)
    fed = SimpleNamespace(spec=SimpleNamespace(num_classes=3), clients=[client] * 5)
    doc = poisoned(5, {"kind": "sign_flip", "count": 1}, {"name": "zeno"})
    hook = DefenseHook(ServerSetup(scenario=doc, fed=fed, sizes={}))  # type: ignore[arg-type]
    honest = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    scales = [1.0, 0.8, 1.2, 0.9, -1.0]
    replies = [reply(i, {"w": honest * s, "b": np.zeros(3, np.float32)})
               for i, s in enumerate(scales)]  # fmt: skip
    kept, figures = hook.transform(1, replies, GLOBAL, {i: i for i in range(5)}, Linear23())
    assert figures["defense"]["flagged"] == [4]
    combined = kept[0].content.array_records["arrays"]
    assert combined["w"].numpy()[0, 0] == pytest.approx((1.0 + 0.8 + 1.2 + 0.9) / 4)
