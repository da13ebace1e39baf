"""What the cross-section rules read of a scenario: a Protocol of
:class:`fedrobust.scenario.Scenario`, which runs the rules from its validator, so they
cannot import it (``config/compat.py`` and the feature packages' own rule modules)."""

from __future__ import annotations

from typing import Protocol

from fedrobust.adversarial.config import AdversarialConfig
from fedrobust.config.evaluation import EvaluationConfig
from fedrobust.continual.config import ContinualConfig
from fedrobust.data.config import DataConfig
from fedrobust.models.config import ModelConfig
from fedrobust.personalization.config import PersonalizationConfig
from fedrobust.privacy.config import PrivacyConfig
from fedrobust.robust.config import AttackConfig, DefenseConfig
from fedrobust.strategy.config import StrategyConfig
from fedrobust.train.config import TrainConfig


class Scenario(Protocol):
    """What the rules read of :class:`fedrobust.scenario.Scenario` (which runs them from
    its validator, so this module cannot import it)."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    strategy: StrategyConfig
    privacy: PrivacyConfig
    adversarial: AdversarialConfig
    attack: AttackConfig
    defense: DefenseConfig
    continual: ContinualConfig | None
    personalization: PersonalizationConfig | None
    evaluation: EvaluationConfig

    def sampled_per_round(self) -> int: ...

    def defense_num_malicious(self) -> int: ...

    def secagg_enabled(self) -> bool: ...
