"""The ``tune`` section: the search space of ``fedrobust tune`` and how trials are scored.

A key with a dot is a search path, the dotted name of a scenario field, mapped to a
distribution; a key without one is a setting of the search::

    tune:
      metric: val_accuracy              # or val_loss, val_balanced_accuracy
      train.optimizer.lr: {loguniform: [0.001, 0.3]}
      train.local_epochs: {int: [1, 3]}
      model.hidden: {choice: [[64], [128, 64]]}

Here every path must name a field of the schema (checked when the scenario loads, so
``fedrobust validate`` catches a typo); that every value a distribution can produce makes a
valid scenario is checked by ``fedrobust tune`` before the first trial
(:func:`fedrobust.tune.space.check_space`). ``fedrobust run`` ignores the section.
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.fields import FieldInfo

from fedrobust.config.base import FieldError, Section, field_error

# The validation figures of metrics.json's rounds a trial can be scored on, and whether
# higher is better. The test set is never a choice: it is scored once, on the chosen model.
VALIDATION_METRICS: dict[str, Literal["maximize", "minimize"]] = {
    "val_accuracy": "maximize",
    "val_balanced_accuracy": "maximize",
    "val_loss": "minimize",
}
DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")
SETTINGS = ("metric", "pruner", "sampler")
# Sections a search may not reach into: where results go, and the search itself.
UNSEARCHABLE = {"output": "it says where results go", "tune": "the search cannot search itself"}


class Distribution(BaseModel):
    """One search dimension, written in YAML as a one-key mapping.

    ``{loguniform: [low, high]}`` (low > 0), ``{uniform: [low, high], step: s}`` (step
    optional), ``{int: [low, high], step: s}`` or ``{int: [low, high], log: true}``, and
    ``{choice: [v1, v2, ...]}`` (any YAML values: numbers, names, lists, mappings).

    Parameters
    ----------
    kind : str
        loguniform | uniform | int | choice.
    low, high : float or int
        The bounds, both included (not for choice).
    step : float or int
        Spacing of the values (uniform, int); ``high - low`` must be a multiple of it.
    log : bool
        int: sample on a log scale.
    choices : list
        choice: the values, at least two, none repeated.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["loguniform", "uniform", "int", "choice"]
    low: int | float | None = None
    high: int | float | None = None
    step: Annotated[int | float, Field(gt=0)] | None = None
    log: bool = False
    choices: list[Any] = []

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError(f"a distribution is a mapping like {{uniform: [0, 1]}}, got {raw!r}")
        kinds = [k for k in raw if k in DISTRIBUTIONS]
        if len(kinds) != 1:
            unknown = sorted(str(k) for k in raw if k not in (*DISTRIBUTIONS, "step", "log"))
            got = f"unknown {unknown[0]!r}" if unknown else f"got {sorted(map(str, raw))}"
            raise ValueError(f"give exactly one of {', '.join(DISTRIBUTIONS)} ({got})")
        kind = kinds[0]
        extra = sorted(str(k) for k in raw if k != kind)
        allowed = {"uniform": {"step"}, "int": {"step", "log"}}.get(kind, set())
        if set(extra) - allowed:
            raise ValueError(f"{kind} takes no {', '.join(sorted(set(extra) - allowed))}")
        value = raw[kind]
        if kind == "choice":
            if not isinstance(value, list):
                raise ValueError(f"choice takes a list of values, got {value!r}")
            return {"kind": kind, "choices": value}
        if not (isinstance(value, list) and len(value) == 2):
            raise ValueError(f"{kind} takes [low, high], got {value!r}")
        return {"kind": kind, "low": value[0], "high": value[1], **{k: raw[k] for k in extra}}

    @model_validator(mode="after")
    def _consistent(self) -> Distribution:
        if self.kind == "choice":
            self._check_choices()
            return self
        low, high = self.low, self.high
        if low is None or high is None or isinstance(low, bool) or isinstance(high, bool):
            raise ValueError(f"{self.kind} takes two numbers [low, high]")
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ValueError(f"{self.kind} needs finite low < high, got [{low}, {high}]")
        if self.kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform needs low > 0, got {low}")
        if self.kind == "int":
            if not all(isinstance(v, int) for v in (low, high, self.step or 1)):
                raise ValueError("int takes whole-number bounds and step")
            if self.log and (low < 1 or self.step not in (None, 1)):
                raise ValueError("int with log: true needs low >= 1 and no step")
        if self.step is not None:
            spans = (high - low) / self.step
            if abs(spans - round(spans)) > 1e-9:
                raise ValueError(
                    f"high - low ({high - low}) must be a multiple of step ({self.step})"
                )
        return self

    def _check_choices(self) -> None:
        if len(self.choices) < 2:
            raise ValueError("choice needs at least two values")
        seen = [json.dumps(c, sort_keys=True) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError("choice repeats a value")

    @model_serializer(mode="plain")
    def _to_yaml(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choice": self.choices}
        doc: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step is not None:
            doc["step"] = self.step
        if self.log:
            doc["log"] = True
        return doc

    def extremes(self) -> list[Any]:
        """Every value that must make a valid scenario for all sampled ones to: the two
        bounds (every field constraint is an interval), or every choice."""
        if self.kind == "choice":
            return list(self.choices)
        return [self.low, self.high]


class TuneConfig(Section):
    """The search of ``fedrobust tune``: its space, its score, how it samples and prunes.

    Parameters
    ----------
    metric : str
        val_accuracy | val_balanced_accuracy (maximised) | val_loss (minimised): the
        clients' validation figure (metrics.json rounds) a trial reports each round and is
        scored on; ``--metric`` overrides it. Never a test figure.
    pruner : str
        median | hyperband | none: how a trial whose rounds fall behind is stopped early;
        ``--pruner`` overrides it.
    sampler : str
        tpe | random: how the next trial's values are chosen (seeded by the scenario seed).
    space : dict[str, Distribution]
        Written as the section's dotted keys: scenario field path -> distribution, one of
        ``{loguniform: [low, high]}`` (low > 0), ``{uniform: [low, high]}`` (optional
        ``step``), ``{int: [low, high]}`` (optional ``step``, or ``log: true``) and
        ``{choice: [v1, v2, ...]}``; e.g. ``train.optimizer.lr: {loguniform: [0.001, 0.3]}``.
    """

    metric: Literal[tuple(VALIDATION_METRICS)] = "val_accuracy"  # type: ignore[valid-type]
    pruner: Literal["median", "hyperband", "none"] = "median"
    sampler: Literal["tpe", "random"] = "tpe"
    space: dict[str, Distribution] = {}

    @model_validator(mode="before")
    @classmethod
    def _split_paths(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        settings = {k: v for k, v in raw.items() if "." not in str(k)}
        space: dict[str, Distribution] = {}
        for key in settings:
            if key in SETTINGS:
                continue
            if key == "seed":
                raise field_error(
                    "seed",
                    "cannot be searched: picking the seed that scores best picks noise; run "
                    "the best scenario over seeds with `fedrobust repeat`",
                )
            raise field_error(
                str(key),
                f"unknown key: a search path is a dotted scenario field such as "
                f"train.optimizer.lr; the settings are {', '.join(SETTINGS)}",
            )
        for key, value in raw.items():
            if "." not in str(key):
                continue
            try:
                space[str(key)] = Distribution.model_validate(value)
            except ValidationError as exc:
                message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
                raise field_error(str(key), message) from None
        return {**settings, "space": space}

    @model_validator(mode="after")
    def _paths_name_fields(self) -> TuneConfig:
        if not self.space:
            raise ValueError(
                "names no field to search: add dotted paths such as "
                "train.optimizer.lr: {loguniform: [0.001, 0.3]}"
            )
        for path in sorted(self.space):
            for other in self.space:
                if other.startswith(path + "."):
                    raise field_error(other, f"lies inside {path}, which is searched too")
        return self

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc = handler(self)  # the paths go back to the section's top level, as written
        return {**{k: v for k, v in doc.items() if k != "space"}, **doc.get("space", {})}

    def check_paths(self, fields: dict[str, FieldInfo]) -> None:
        """Refuse a searched path that names no field of the scenario schema (``fields``:
        the scenario's top level); the error blames ``tune.<path>``."""
        for path in sorted(self.space):
            try:
                check_path(path, fields)
            except FieldError as exc:
                raise field_error(f"tune.{exc.field}", exc.what) from None

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """Whether ``metric`` is maximised or minimised."""
        return VALIDATION_METRICS[self.metric]


def check_path(path: str, fields: dict[str, FieldInfo]) -> None:
    """Refuse a dotted path that names no field of the scenario schema, whose top-level
    fields are ``fields`` (the scenario passes its own: this module never imports it).

    Raises
    ------
    FieldError
        Blaming ``path`` (the scenario reports it as ``tune.<path>``).
    """
    parts = path.split(".")
    if any(not p for p in parts):
        raise field_error(path, "is not a dotted field path (empty part)")
    if parts[0] in UNSEARCHABLE:
        raise field_error(path, f"cannot be searched: {UNSEARCHABLE[parts[0]]}")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the scenario"
        if part not in fields:
            known = ", ".join(sorted(fields))
            raise field_error(path, f"{where} has no field '{part}'; its fields: {known}")
        if depth == len(parts) - 1:
            return
        sections = _sections(fields[part].annotation)
        if not sections:
            raise field_error(
                path, f"{'.'.join(parts[: depth + 1])} is a value, not a section: it has no fields"
            )
        fields = {name: info for model in sections for name, info in model.model_fields.items()}


def _sections(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation admits (through Optional, unions and
    Annotated); empty for a plain value, a list or a mapping."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return _sections(args[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [model for arg in args for model in _sections(arg)]
    return []
