"""The search space of a scenario: checking it, sampling it, and filling values in.

A trial's scenario is the scenario file's own mapping (as written, not resolved) without
its ``tune`` section and with each searched path set to the trial's value; so is
``best.yaml``. Values are checked against the schema by building that scenario.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fedrobust.errors import FedrobustError
from fedrobust.tune.config import Distribution, TuneConfig

if TYPE_CHECKING:
    import optuna

    from fedrobust.scenario import Scenario

PRIMITIVE = (type(None), bool, int, float, str)
STEP_DIGITS = 12


def tune_section(scenario: Scenario, source: str | Path) -> TuneConfig:
    """The scenario's ``tune`` section.

    Raises
    ------
    FedrobustError
        Naming ``source`` when the scenario has none.
    """
    if scenario.tune is None:
        raise FedrobustError(
            str(source),
            "has no tune: section; add one that maps dotted fields to distributions, "
            "e.g. tune: {train.optimizer.lr: {loguniform: [0.001, 0.3]}}",
        )
    return scenario.tune


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The scenario file's mapping as written (call after it loaded: it is valid YAML)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise FedrobustError(str(path), "the file must hold a mapping of sections")
    return raw


def with_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the scenario mapping ``raw`` without ``tune``, each dotted path of
    ``values`` set (missing or empty sections on the way are created)."""
    doc = copy.deepcopy({k: v for k, v in raw.items() if k != "tune"})
    for path, value in values.items():
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = copy.deepcopy(value)
    return doc


def build(raw: dict[str, Any], values: dict[str, Any]) -> Scenario:
    """The validated scenario of ``raw`` with ``values`` filled in (see :func:`with_values`)."""
    from fedrobust.scenario import parse_scenario

    return parse_scenario(with_values(raw, values))


def check_space(raw: dict[str, Any], space: dict[str, Distribution]) -> None:
    """Refuse a search whose distributions can produce a value the schema refuses.

    Each path's bounds (every field constraint is an interval, so the values between
    them pass too) or each choice is filled into the scenario, the other paths keeping
    the file's values; the scenario must validate. Combinations of values are not all
    tried: a trial whose combination is refused fails with the reason.

    Raises
    ------
    FedrobustError
        Naming ``tune.<path>``, the value and why the scenario refuses it.
    """
    for path, dist in space.items():
        for value in dist.extremes():
            try:
                build(raw, {path: value})
            except FedrobustError as exc:
                raise FedrobustError(
                    f"tune.{path}",
                    f"{dist.kind} can give {value!r}, which the scenario refuses "
                    f"({exc.where}: {exc.what})",
                ) from None


def suggest(trial: optuna.Trial, space: dict[str, Distribution]) -> dict[str, Any]:
    """Ask ``trial`` for one value of every path; the values as the scenario takes them.

    A choice between plain values (numbers, names) is suggested as itself; a choice
    between structured values (lists, mappings) by their JSON text, decoded here, so the
    study's storage and plots show ``[128, 64]``.
    """
    values: dict[str, Any] = {}
    for path, dist in space.items():
        if dist.kind == "choice":
            if all(isinstance(c, PRIMITIVE) for c in dist.choices):
                values[path] = trial.suggest_categorical(path, dist.choices)
            else:
                labels = [json.dumps(c) for c in dist.choices]
                values[path] = json.loads(trial.suggest_categorical(path, labels))
        elif dist.kind == "int":
            assert dist.low is not None and dist.high is not None  # noqa: S101 - validated
            values[path] = trial.suggest_int(
                path, int(dist.low), int(dist.high), step=int(dist.step or 1), log=dist.log
            )
        else:
            assert dist.low is not None and dist.high is not None  # noqa: S101 - validated
            value = trial.suggest_float(
                path, float(dist.low), float(dist.high), step=dist.step,
                log=dist.kind == "loguniform",
            )  # fmt: skip
            # a stepped value is low + k * step: 0.8999999999999999 would be 0.9
            values[path] = value if dist.step is None else round(value, STEP_DIGITS)
    return values


def show(value: Any) -> str:
    """A value as tables print it: floats to 4 significant digits, the rest as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)
