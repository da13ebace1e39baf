"""The client's adversarial-training hook picks the round's attack plugin."""

from __future__ import annotations

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
