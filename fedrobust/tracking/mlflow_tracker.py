"""``output.mlflow``: the run in an MLflow tracking store, live.

One MLflow run per fedrobust run: the flattened scenario as parameters (once), every
round's scalars as metrics (step = round), and the report, metrics.json, model.pt,
scenario.yaml and the plots as artifacts when the run ends. A resumed run continues the
same MLflow run (its id is kept in ``DIR/tracking.json``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fedrobust.rundir import METRICS_FILE, MODEL_FILE, REPORT_FILE, SCENARIO_FILE, write_atomic
from fedrobust.scenario import flatten_scenario
from fedrobust.tracking.base import COMPLETED, TRACKING_FILE, Tracker
from fedrobust.tracking.config import FILE_SCHEME
from fedrobust.tracking.flatten import flatten_figures

if TYPE_CHECKING:
    from fedrobust.scenario import Scenario

#: Files of the run directory logged as artifacts (those that exist), then its plots.
ARTIFACTS = (REPORT_FILE, METRICS_FILE, MODEL_FILE, SCENARIO_FILE)
#: MLflow's limits (``mlflow.utils.validation``, MLflow >= 2.14): per batch, per value.
PARAMS_PER_BATCH, METRICS_PER_BATCH, PARAM_VALUE_LENGTH = 100, 1000, 6000
#: What MLflow refuses in a key (alphanumerics, ``_ - . / space`` pass everywhere).
_BAD_KEY = re.compile(r"[^\w./\- ]")


class MlflowTracker(Tracker):
    """Logs the run to ``output.mlflow.tracking_uri`` through an ``MlflowClient`` (no
    global MLflow state: runs in one process do not meet).

    Parameters
    ----------
    scenario : Scenario
        The validated scenario (``output.mlflow`` set).
    run_dir : Path
        The run directory.
    resumed_after : int
        The checkpoint's round on a resume (continue the MLflow run in
        ``run_dir/tracking.json``, when it is in this store), else 0 (a new MLflow run).
    """

    name = "MLflow"

    def __init__(self, scenario: Scenario, run_dir: Path, resumed_after: int) -> None:
        cfg = scenario.output.mlflow
        assert cfg is not None
        uri = cfg.resolved_uri(run_dir)
        if uri.startswith(FILE_SCHEME):
            # MLflow 3 refuses its file store unless this is set; a local store is what
            # works offline, with no server (mlflow-skinny has no SQLite backend).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(uri)
        run_id = _continued_run(self.client, run_dir, uri) if resumed_after else None
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
        else:
            run_id = _new_run(self.client, scenario, run_dir)
            record = {"mlflow": {"tracking_uri": uri, "run_id": run_id}}
            text = json.dumps(record, indent=2)
            write_atomic(run_dir / TRACKING_FILE, lambda out: out.write(text.encode("utf-8")))
        self.run_id: str = run_id

    def log_round(self, figures: dict[str, Any]) -> None:
        """Log the round's scalars at step = round."""
        step, now = int(figures["round"]), int(time.time() * 1000)
        metrics = [Metric(metric_key(k), v, now, step) for k, v in flatten_figures(figures).items()]
        for batch in _batches(metrics, METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=batch)

    def close(self, run_dir: Path, status: str) -> None:
        """Log the run's files and plots as artifacts; end the MLflow run."""
        files = [run_dir / name for name in ARTIFACTS] + sorted(run_dir.glob("*.png"))
        for path in files:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED" if status == COMPLETED else "FAILED")


def metric_key(key: str) -> str:
    """``key`` as MLflow takes it: ``@`` -> ``_at_``, ``%`` -> ``pct``, others -> ``_``."""
    return _BAD_KEY.sub("_", key.replace("@", "_at_").replace("%", "pct"))


def scenario_params(doc: dict[str, Any]) -> dict[str, str]:
    """The scenario as MLflow parameters: dotted paths to its leaves (lists whole), JSON
    values (strings as they are), cut to MLflow's length."""
    return {
        metric_key(path): (value if isinstance(value, str) else json.dumps(value))[
            :PARAM_VALUE_LENGTH
        ]
        for path, value in flatten_scenario(doc).items()
    }


def _new_run(client: MlflowClient, scenario: Scenario, run_dir: Path) -> str:
    """Create the MLflow run (its experiment when missing); log the scenario as params."""
    cfg = scenario.output.mlflow
    assert cfg is not None
    experiment_id = _experiment_id(client, cfg.experiment or scenario.name)
    tags = {
        "fedrobust.scenario": scenario.name,
        "fedrobust.seed": str(scenario.seed),
        "fedrobust.run_dir": str(run_dir.resolve()),
    }
    run_name = cfg.run_name or run_dir.resolve().name
    run_id = str(client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id)
    params = scenario_params(scenario.model_dump(mode="json"))
    for batch in _batches([Param(k, v) for k, v in params.items()], PARAMS_PER_BATCH):
        client.log_batch(run_id, params=batch)
    return run_id


def _experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # another run created it in between
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _continued_run(client: MlflowClient, run_dir: Path, uri: str) -> str | None:
    """The MLflow run ``run_dir/tracking.json`` names, if it is in this store."""
    try:
        record = json.loads((run_dir / TRACKING_FILE).read_text(encoding="utf-8"))["mlflow"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("tracking_uri") != uri:
        return None
    try:
        return str(client.get_run(record["run_id"]).info.run_id)
    except (MlflowException, KeyError):
        return None


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
