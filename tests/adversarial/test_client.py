"""The client's adversarial-training hook picks the round's attack plugin."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from fedrobust.adversarial.client import adversarial_plugin
from fedrobust.adversarial.training import AdversarialExamples, Trades
from fedrobust.scenario import AdversarialTrainingConfig


def test_adversarial_plugin_follows_the_method_and_its_warm_up() -> None:
    cfg = AdversarialTrainingConfig(method="pgd_at", start_round=3, norm="l2")
    assert adversarial_plugin(cfg, 2, 10, 0) is None
    plugin = adversarial_plugin(cfg, 3, 10, 0)
    assert isinstance(plugin, AdversarialExamples) and plugin.attack == "pgdl2"
    fast = adversarial_plugin(AdversarialTrainingConfig(method="fgsm_rs", eps=0.2), 1, 10, 0)
    assert isinstance(fast, AdversarialExamples)
    assert fast.attack == "ffgsm" and fast.alpha == 0.25  # 1.25 eps (Wong et al.)
    trades = adversarial_plugin(AdversarialTrainingConfig(method="trades"), 1, 10, 0)
    assert isinstance(trades, Trades)
    assert adversarial_plugin(AdversarialTrainingConfig(), 5, 10, 0) is None


def test_a_linear_eps_schedule_ramps_the_budget_and_the_step_from_start_round() -> None:
    cfg = AdversarialTrainingConfig(
        method="pgd_at", eps=0.3, steps=10, start_round=3,
        eps_schedule={"kind": "linear", "warmup_rounds": 4},
    )  # fmt: skip
    # rounds 3, 4, 5, 6 use 1/4, 2/4, 3/4, 4/4 of eps; alpha (2.5 eps / steps) follows
    for rnd, share in [(3, 0.25), (4, 0.5), (5, 0.75), (6, 1.0), (9, 1.0)]:
        plugin = adversarial_plugin(cfg, rnd, 10, 0)
        assert isinstance(plugin, AdversarialExamples)
        assert math.isclose(plugin.eps, 0.3 * share)
        assert math.isclose(plugin.alpha, 0.075 * share)
    trades = adversarial_plugin(
        AdversarialTrainingConfig(method="trades", eps=0.2, eps_schedule={"warmup_rounds": 2}),
        1, 10, 0,
    )  # fmt: skip
    assert isinstance(trades, Trades) and math.isclose(trades.eps, 0.1)
    constant = AdversarialTrainingConfig(method="fgsm_rs", eps_schedule={"kind": "constant"})
    assert constant.budget(7) == (constant.eps, constant.step_size())


def test_eps_schedule_fields_that_do_not_apply_are_refused() -> None:
    with pytest.raises(ValidationError, match="warmup_rounds"):
        AdversarialTrainingConfig(
            method="pgd_at", eps_schedule={"kind": "constant", "warmup_rounds": 3}
        )
    with pytest.raises(ValidationError, match="eps_schedule"):
        AdversarialTrainingConfig(eps_schedule={"kind": "linear"})
