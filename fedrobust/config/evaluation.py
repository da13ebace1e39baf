"""The ``evaluation`` section: evaluations of a run beyond its test accuracy."""

from __future__ import annotations

from fedrobust.config.base import Section
from fedrobust.explain.config import ExplainConfig
from fedrobust.privacy_attacks.config import PrivacyAttacksConfig


class EvaluationConfig(Section):
    """Extra evaluations of a run.

    Parameters
    ----------
    privacy_attacks : PrivacyAttacksConfig or None
        Gradient inversion by the server and membership inference on the final model
        (:mod:`fedrobust.privacy_attacks`).
    explain : ExplainConfig or None
        Attribution maps of the final model (:mod:`fedrobust.explain`).
    """

    privacy_attacks: PrivacyAttacksConfig | None = None
    explain: ExplainConfig | None = None
