"""Scenario schema: one YAML file describes a whole experiment.

:class:`Scenario` composes the sections, each owned by its feature package
(``fedrobust/<feature>/config.py``) on the strict :class:`~fedrobust.config.base.Section`
base; unknown keys are refused at every level. The rules between sections live in
:mod:`fedrobust.config.compat`, the checks that need the data in
:mod:`fedrobust.config.checks`.

``load_scenario`` turns any problem into a :class:`FedrobustError` whose ``where`` is
the dotted path of the offending field (``data.partition.alpha``), or the file and
line for YAML syntax errors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, model_validator

from fedrobust.adversarial.config import (
    ADV_TRAINING_FIELDS,
    AdversarialConfig,
    AdversarialEvaluationConfig,
    AdversarialTrainingConfig,
)
from fedrobust.bundled import resolve_scenario
from fedrobust.config import compat
from fedrobust.config.base import FieldError, Section
from fedrobust.config.evaluation import EvaluationConfig
from fedrobust.config.run import OutputConfig, SimulationConfig
from fedrobust.continual.config import (
    CONTINUAL_METHODS,
    ContinualConfig,
    DomainConfig,
    EWCConfig,
    LwFConfig,
    ReplayConfig,
)
from fedrobust.data.config import (
    BUNDLED_DATASETS,
    PARTITION_COMMON,
    PARTITION_FIELDS,
    PARTITION_KINDS,
    AugmentConfig,
    DataConfig,
    FlipAugment,
    ImbalanceConfig,
    LabelNoiseConfig,
    LimitedConfig,
    NoiseAugment,
    NormalizeConfig,
    PartitionConfig,
    RotateAugment,
    ShiftAugment,
)
from fedrobust.errors import FedrobustError
from fedrobust.models.config import ModelConfig
from fedrobust.personalization.config import PersonalizationConfig
from fedrobust.privacy.config import (
    ADAPTIVE_FIELDS,
    DP_FIELDS,
    AuditConfig,
    DPConfig,
    PrivacyConfig,
)
from fedrobust.robust.config import (
    ATTACK_FIELDS,
    COLLUDING_ATTACKS,
    AttackConfig,
    DefenseConfig,
)
from fedrobust.secagg.config import SECAGG_STAGES, SecAggConfig, SecAggDropout
from fedrobust.strategy.config import StrategyConfig
from fedrobust.train.config import (
    LOSS_FIELDS,
    SCHEDULE_FIELDS,
    EarlyStoppingConfig,
    LossConfig,
    LrScheduleConfig,
    OptimizerConfig,
    TrainConfig,
)
from fedrobust.tune.config import TuneConfig

# Names other modules import from here; each is defined in its feature's config module.
__all__ = [
    "ADAPTIVE_FIELDS",
    "ADV_TRAINING_FIELDS",
    "ATTACK_FIELDS",
    "BUNDLED_DATASETS",
    "COLLUDING_ATTACKS",
    "CONTINUAL_METHODS",
    "DP_FIELDS",
    "LOSS_FIELDS",
    "PARTITION_COMMON",
    "PARTITION_FIELDS",
    "PARTITION_KINDS",
    "SCHEDULE_FIELDS",
    "SECAGG_STAGES",
    "AdversarialConfig",
    "AdversarialEvaluationConfig",
    "AdversarialTrainingConfig",
    "AttackConfig",
    "AugmentConfig",
    "AuditConfig",
    "ContinualConfig",
    "DPConfig",
    "DataConfig",
    "DefenseConfig",
    "DomainConfig",
    "EvaluationConfig",
    "EWCConfig",
    "EarlyStoppingConfig",
    "FlipAugment",
    "ImbalanceConfig",
    "LabelNoiseConfig",
    "LimitedConfig",
    "LossConfig",
    "LrScheduleConfig",
    "LwFConfig",
    "ModelConfig",
    "NoiseAugment",
    "NormalizeConfig",
    "OptimizerConfig",
    "OutputConfig",
    "PersonalizationConfig",
    "PartitionConfig",
    "PrivacyConfig",
    "ReplayConfig",
    "RotateAugment",
    "Scenario",
    "SecAggConfig",
    "SecAggDropout",
    "Section",
    "ShiftAugment",
    "SimulationConfig",
    "StrategyConfig",
    "TrainConfig",
    "flatten_scenario",
    "load_scenario",
    "parse_scenario",
    "scenario_to_yaml",
]


class Scenario(Section):
    """A whole experiment: data, model, training recipe, strategy, resources.

    Parameters
    ----------
    name : str
        Scenario name; names the default run directory.
    seed : int
        Seed for every random choice (splits, sampling, initialisation, batches).
    data : DataConfig
        The data source, its federated split and per-client transforms.
    model : ModelConfig
        The network every client trains.
    train : TrainConfig
        The local training recipe and the rounds.
    strategy : StrategyConfig
        The server's update rule (Flower's FedAvg, FedProx, FedAdam, ...; SCAFFOLD,
        FedDyn, FedNova).
    privacy : PrivacyConfig
        Differential privacy (sample- or client-level), the canary audit and SecAgg+.
    adversarial : AdversarialConfig
        Adversarial training on the clients and robust evaluation on the server.
    attack : AttackConfig
        Malicious clients: data and update poisoning, colluders, malformed replies.
    defense : DefenseConfig
        How the round's client updates are combined (robust aggregation).
    continual : ContinualConfig or None
        A sequence of tasks and the continual-learning method (default: none).
    personalization : PersonalizationConfig or None
        A personal model per client (default: none).
    evaluation : EvaluationConfig
        Extra evaluations of the run: privacy attacks, attribution maps.
    simulation : SimulationConfig
        Resources of the Flower simulation and the server's reply timeout.
    output : OutputConfig
        Where the run is written and which live trackers follow it.
    tune : TuneConfig or None
        The search space of ``fedrobust tune``; ``fedrobust run`` ignores it.
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    strategy: StrategyConfig = StrategyConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    attack: AttackConfig = AttackConfig()
    defense: DefenseConfig = DefenseConfig()
    continual: ContinualConfig | None = None
    personalization: PersonalizationConfig | None = None
    evaluation: EvaluationConfig = EvaluationConfig()
    simulation: SimulationConfig = SimulationConfig()
    output: OutputConfig = OutputConfig()
    tune: TuneConfig | None = None  # read by `fedrobust tune` only; `run` ignores it

    @model_validator(mode="after")
    def _combinations(self) -> Scenario:
        if self.tune is not None:
            self.tune.check_paths(type(self).model_fields)
        compat.check(self)
        return self

    def secagg_enabled(self) -> bool:
        """Whether rounds run through SecAgg+."""
        cfg = self.privacy.secure_aggregation
        return cfg is not None and cfg.enabled

    def defense_num_malicious(self) -> int:
        """The attackers the defence assumes: ``defense.num_malicious`` or the attack's count."""
        if self.defense.num_malicious is not None:
            return self.defense.num_malicious
        return self.attack.num_malicious(self.data.partition.num_clients)

    def sampled_per_round(self) -> int:
        """How many clients the server samples each round."""
        n = self.data.partition.num_clients
        return min(n, max(self.train.min_train_clients, int(self.train.fraction_train * n), 1))

    def digest(self) -> str:
        """A stable hash of the resolved scenario."""
        return _hash(self.model_dump(mode="json"))

    def resume_digest(self) -> str:
        """Hash of everything a resumed run must share with the original.

        ``train.rounds`` (a run may be extended) and ``output`` (where it is written)
        are left out; any other change refuses the resume.
        """
        doc = self.model_dump(mode="json")
        doc["train"].pop("rounds")
        doc.pop("output")
        doc.pop("tune", None)  # the search space does not change a run
        return _hash(doc)


def _hash(doc: dict[str, Any]) -> str:
    text = json.dumps(doc, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- loading


_UNION_TAGS = {"int", "float", "str", "bool", "constrained-int", "constrained-float"}


def _error_from_validation(exc: ValidationError) -> FedrobustError:
    first = exc.errors()[0]
    # a union's member type ("int", "float", "constrained-int", ...) is not a field
    loc = [str(p) for p in first["loc"] if str(p) not in _UNION_TAGS and "[" not in str(p)]
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, FieldError):
        loc = [*loc, *ctx_error.field.split(".")]
        message = ctx_error.what
    else:
        message = _plain_message(first)
    return FedrobustError(".".join(loc) or "<scenario>", message)


def _plain_message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind.endswith("_type") or kind.endswith("_parsing"):
        message += f" (got {type(error.get('input')).__name__}: {error.get('input')!r})"
    return message


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_scenario(raw: Any) -> Scenario:
    """Validate an already-parsed mapping into a :class:`Scenario`."""
    if not isinstance(raw, dict):
        raise FedrobustError("<scenario>", "the file must hold a mapping of sections")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise _error_from_validation(exc) from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, parse and validate a scenario YAML file.

    Parameters
    ----------
    path : str or Path
        The YAML file, or the name of a bundled scenario (``quickstart``;
        :mod:`fedrobust.bundled`).
    overrides : dict, optional
        Dotted keys to set before validation, e.g. ``{"train.rounds": 3}``.

    Raises
    ------
    FedrobustError
        With the dotted field path, or the file (and line) for I/O and syntax errors.
    """
    path = resolve_scenario(path)
    if not path.is_file():
        raise FedrobustError(
            str(path), "no such scenario file, nor a bundled scenario (`fedrobust scenarios`)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FedrobustError(str(path), f"cannot read: {exc}") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise FedrobustError(where, f"YAML syntax error: {problem}") from None
    if raw is None:
        raise FedrobustError(str(path), "the file is empty")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return parse_scenario(raw)


def _set_dotted(raw: Any, dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(part, {})
    if isinstance(node, dict):
        node[parts[-1]] = value


def flatten_scenario(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A scenario document (``model_dump(mode="json")``, or metrics.json's ``scenario``) as
    ``{dotted key: value}``; lists, ``None`` and empty mappings are values."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_scenario(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def scenario_to_yaml(scenario: Scenario) -> str:
    """The resolved scenario (defaults filled in) as YAML."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
