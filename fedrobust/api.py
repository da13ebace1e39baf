"""The Python API: run, load and validate scenarios from a notebook or a script.

The same simulation as ``fedrobust run``, without the command line::

    import fedrobust

    result = fedrobust.run("scenarios/quickstart.yaml", rounds=3)
    result.final["accuracy"]          # the final figures (metrics.json's ``final``)
    result.rounds                     # one row per round (a pandas DataFrame if installed)
    model = result.model()            # the kept global model, weights loaded
    again = fedrobust.load_run(result.run_dir)

Errors in the scenario raise :class:`~fedrobust.errors.FedrobustError` whose ``where`` names
the field (``data.partition.alpha``); a run that starts and fails raises
:class:`~fedrobust.launch.RunFailed` and keeps the rounds it finished.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedrobust.errors import FedrobustError
from fedrobust.rundir import RunDir

if TYPE_CHECKING:
    from torch import nn

    from fedrobust.scenario import Scenario


def validate(
    scenario: str | Path | Mapping[str, Any] | Scenario,
    *,
    rounds: int | None = None,
    seed: int | None = None,
) -> Scenario:
    """The resolved :class:`~fedrobust.scenario.Scenario` (every default filled in).

    Parameters
    ----------
    scenario : str, Path, mapping or Scenario
        A YAML file, the parsed mapping of one, or a scenario already validated.
    rounds, seed : int, optional
        Overrides of ``train.rounds`` and ``seed``.

    Raises
    ------
    FedrobustError
        Whose ``where`` is the offending field's dotted path (or the file).
    """
    from fedrobust.scenario import Scenario, load_scenario, parse_scenario

    changes: dict[str, Any] = {}
    if rounds is not None:
        changes["train.rounds"] = rounds
    if seed is not None:
        changes["seed"] = seed
    if isinstance(scenario, (str, Path)):
        return load_scenario(scenario, changes)
    if isinstance(scenario, Scenario):
        doc: Any = scenario.model_dump(mode="json")
    elif isinstance(scenario, Mapping):
        doc = _plain(scenario)
    else:
        raise FedrobustError(
            "scenario", f"expected a YAML path, a mapping or a Scenario, got {type(scenario)}"
        )
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return parse_scenario(doc)


def run(
    scenario: str | Path | Mapping[str, Any] | Scenario,
    *,
    out: str | Path | None = None,
    rounds: int | None = None,
    seed: int | None = None,
    resume: bool = False,
) -> RunResult:
    """Run ``scenario`` in a Flower simulation, as ``fedrobust run`` does.

    Parameters
    ----------
    scenario : str, Path, mapping or Scenario
        A YAML file, the parsed mapping of one, or a validated scenario.
    out : str or Path, optional
        The run directory (default ``output.dir``, else ``runs/<name>``).
    rounds, seed : int, optional
        Overrides of ``train.rounds`` and ``seed``.
    resume : bool
        Continue the run in ``out`` from its last checkpoint.

    Returns
    -------
    RunResult
        The finished run.

    Raises
    ------
    FedrobustError
        A problem with the scenario or its data (nothing was started).
    fedrobust.launch.RunFailed
        The run started and did not complete (its rounds so far stay in metrics.json).
    """
    from fedrobust.commands.preflight import preflight
    from fedrobust.launch import resolve_run_dir
    from fedrobust.scenario import scenario_to_yaml
    from fedrobust.simulation import check_resumable, run_simulation

    resolved = validate(scenario, rounds=rounds, seed=seed)
    run_dir = resolve_run_dir(resolved, None if out is None else str(out))
    preflight(resolved, run_dir=run_dir)  # writes the run's federation store
    if resume:
        check_resumable(run_dir, resolved)
    with tempfile.TemporaryDirectory(prefix="fedrobust-") as tmp:
        path = Path(tmp) / f"{resolved.name}.yaml"  # the ServerApp reads the scenario file
        path.write_text(scenario_to_yaml(resolved))
        run_simulation(path, resolved, run_dir, resume=resume)
    return load_run(run_dir)


def load_run(run_dir: str | Path) -> RunResult:
    """A finished (or failed) run's results, from its directory.

    Raises
    ------
    FedrobustError
        When ``run_dir`` holds no readable metrics.json.
    """
    from fedrobust.report.metrics import read_metrics

    path = Path(run_dir).expanduser().resolve()
    if not RunDir(path).metrics.is_file():
        raise FedrobustError(str(path), "not a run directory (no metrics.json)")
    return RunResult(path, read_metrics(path))


@dataclass(frozen=True)
class RunResult:
    """One run: its figures, its rounds, its model and its report.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    metrics : dict
        Its metrics.json (``status``, ``scenario``, ``rounds``, ``final``, ...).
    """

    run_dir: Path
    metrics: dict[str, Any]

    @property
    def status(self) -> str:
        """``completed``, ``failed`` or ``running``."""
        return str(self.metrics["status"])

    @property
    def final(self) -> dict[str, Any]:
        """The final figures (those of the model in ``model.pt``); empty if unfinished."""
        return dict(self.metrics.get("final") or {})

    @property
    def rounds(self) -> Any:
        """One row per round: a pandas DataFrame when pandas is installed, else a list of
        dicts (per-client figures left out of the frame; they stay in ``metrics``)."""
        rows = [{k: v for k, v in r.items() if k != "clients"} for r in self.metrics["rounds"]]
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    @cached_property
    def scenario(self) -> Scenario:
        """The scenario as run."""
        from fedrobust.scenario import parse_scenario

        return parse_scenario(self.metrics["scenario"])

    @property
    def report_path(self) -> Path:
        """``report.html``."""
        return RunDir(self.run_dir).report

    def model(self) -> nn.Module:
        """The kept global model with its weights loaded (eval mode).

        Raises
        ------
        FedrobustError
            When the run wrote no ``model.pt`` (it did not finish).
        """
        from fedrobust.commands.common import load_model_for

        return load_model_for(self.run_dir, None)[2].eval()

    def __repr__(self) -> str:
        accuracy = self.final.get("accuracy")
        shown = "–" if accuracy is None else f"{accuracy:.4f}"
        return (
            f"RunResult({self.scenario.name!r}, status={self.status}, "
            f"rounds={len(self.metrics['rounds'])}, accuracy={shown}, dir='{self.run_dir}')"
        )


def _plain(value: Any) -> Any:
    """A mapping's nested mappings and sequences as plain dicts and lists (copies)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
