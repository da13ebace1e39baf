"""The hooks of every feature, in the order they run. A new feature adds one line here.

Order matters where hooks compose. Client: the malicious client poisons its data
before the continual hook cuts out the round's task; adversarial examples follow
augmentation; the client-drift strategies' hooks (SCAFFOLD, FedDyn, FedNova) reply
before the malicious client, whose reply is then what it sends. Server: the colluding
attacker rewrites replies before the defence sees them; early stopping restores the
best model before the others measure the model the run keeps; the audit reads the
epsilon the privacy hook reports; the privacy attacks record the replies as the transport
delivered them and attack the model the run keeps, last.

Limited labels (``SemiSupervisedHook``) cut out a client's labelled part before the
malicious client poisons it: data poisoning acts on the labelled examples.

Client momentum (``ClientMomentumHook``) replies before the malicious client and leaves
an attacking client's reply as trained: an attacker crafts from its raw update, undamped.
"""

from __future__ import annotations

from fedrobust.adversarial.client import AdversarialTrainingHook
from fedrobust.adversarial.server import RobustEvaluationHook
from fedrobust.continual.client import ContinualHook
from fedrobust.continual.fisher_server import FisherAggregationHook
from fedrobust.continual.server import ContinualHeadHook, ContinualMetricsHook
from fedrobust.explain.server import ExplainHook
from fedrobust.federation.client_hooks import ClientHook
from fedrobust.federation.server_hooks import ServerHook, ServerSetup
from fedrobust.personalization.client import PersonalizationHook
from fedrobust.personalization.evaluation import ClientEvaluationHook
from fedrobust.privacy.client import ClientLevelDPHook, DPSGDHook, PolicyHook
from fedrobust.privacy.server import AuditHook, PrivacyHook
from fedrobust.privacy_attacks.server import PrivacyAttackHook
from fedrobust.robust.client import MaliciousHook
from fedrobust.robust.momentum import ClientMomentumHook
from fedrobust.robust.server import AttackMetricsHook, CollusionHook, DefenseHook
from fedrobust.scenario import Scenario
from fedrobust.semisup.client import SemiSupervisedHook
from fedrobust.semisup.server import SemiSupervisedMetricsHook
from fedrobust.strategy.client import FedDynClient, FedNovaClient, ScaffoldClient
from fedrobust.train.early_stopping import EarlyStoppingHook

CLIENT_HOOKS: tuple[type[ClientHook], ...] = (
    PolicyHook,
    DPSGDHook,
    ClientLevelDPHook,
    ScaffoldClient,
    FedDynClient,
    FedNovaClient,
    SemiSupervisedHook,
    ClientMomentumHook,
    MaliciousHook,
    AdversarialTrainingHook,
    ContinualHook,
    PersonalizationHook,
)


def client_hooks(scenario: Scenario) -> list[ClientHook]:
    """The client hooks ``scenario`` uses, in registry order."""
    return [hook for cls in CLIENT_HOOKS if (hook := cls.create(scenario)) is not None]


SERVER_HOOKS: tuple[type[ServerHook], ...] = (
    EarlyStoppingHook,
    PrivacyHook,
    CollusionHook,
    DefenseHook,
    AttackMetricsHook,
    RobustEvaluationHook,
    ContinualMetricsHook,
    FisherAggregationHook,
    ContinualHeadHook,
    SemiSupervisedMetricsHook,
    ClientEvaluationHook,
    AuditHook,
    ExplainHook,
    PrivacyAttackHook,
)


def server_hooks(setup: ServerSetup) -> list[ServerHook]:
    """The server hooks ``setup.scenario`` uses, in registry order."""
    return [hook for cls in SERVER_HOOKS if (hook := cls.create(setup)) is not None]
