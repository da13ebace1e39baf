"""The robust-evaluation hook attacks the kept model once: reused when it is the last round's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from torch import nn

from fedrobust.adversarial import server
from fedrobust.adversarial.server import RobustEvaluationHook
from fedrobust.federation.server_hooks import ServerSetup
from fedrobust.scenario import parse_scenario


def _hook(monkeypatch: pytest.MonkeyPatch) -> tuple[RobustEvaluationHook, list[int]]:
    scenario = parse_scenario({
        "name": "adv", "data": {"dataset": "digits"}, "train": {"rounds": 4},
        "adversarial": {"evaluation": {"attacks": ["pgd"], "eps": [0.1], "every_n_rounds": 2}},
    })  # fmt: skip
    calls: list[int] = []

    def fake(sc: Any, model: nn.Module, fed: Any) -> dict[str, float]:
        calls.append(1)
        return {"pgd@0.1": 0.1 * len(calls)}

    monkeypatch.setattr(server, "scenario_robust_accuracy", fake)
    hook = RobustEvaluationHook(ServerSetup(scenario, fed=None, sizes={}))  # type: ignore[arg-type]
    return hook, calls


def _observe(hook: RobustEvaluationHook, rnd: int) -> dict[str, Any]:
    return hook.observe(SimpleNamespace(rnd=rnd), {}, nn.Linear(1, 1))  # type: ignore[arg-type]


def test_the_kept_last_round_model_is_not_attacked_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    hook, calls = _hook(monkeypatch)
    assert _observe(hook, 1) == {}
    assert _observe(hook, 2) == {"robust_accuracy": {"pgd@0.1": 0.1}}
    _observe(hook, 3)
    last = _observe(hook, 4)["robust_accuracy"]
    final = hook.finish(nn.Linear(1, 1), {"model_round": 4})["robust_accuracy"]
    assert final == last and len(calls) == 2


def test_a_kept_earlier_round_model_is_attacked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    hook, calls = _hook(monkeypatch)
    for rnd in range(1, 5):
        _observe(hook, rnd)
    hook.finish(nn.Linear(1, 1), {"model_round": 2})  # early stopping kept round 2's weights
    assert len(calls) == 3
