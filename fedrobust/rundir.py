"""The layout of a run directory, named in one place.

A run directory holds what one run of a scenario writes::

    metrics.json      the figures, rewritten after every round (fedrobust.report.metrics)
    checkpoint.pt     what --resume continues from (fedrobust.checkpoint); removed when
                      a fresh (not resumed) run starts in the directory
    model.pt          the final global model's state dict
    report.html       the report; its plots (*.png) sit beside it
    scenario.yaml     the scenario as run (overrides applied)
    audit.json        the result of ``fedrobust audit``
    logs/             flwr.log and superlink.log of a simulation
    data/             the simulation's federation store, mapped by every process
                      (fedrobust.data.store): arrays (.npy), partitions as rows, manifest
    .flwr/            the simulation SuperLink's private FLWR_HOME, while it runs
    deploy/           credentials and logs of ``fedrobust deploy`` (its default)
    export/           ``fedrobust export`` files, export.json and export.md (its default)
    tb/               TensorBoard event files (``output.tensorboard``)
    tracking.json     the MLflow run a resume continues (``output.mlflow``)
    privacy_attacks/  updates the server recorded for ``evaluation.privacy_attacks``
                      (``updates/``), results.json and the attacks' pictures
    explain/          attribution maps of ``evaluation.explain`` / ``fedrobust explain``:
                      results.json, the figures and each method's maps (.npz)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fedrobust.errors import FedrobustError

METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
REPORT_FILE = "report.html"
SCENARIO_FILE = "scenario.yaml"
AUDIT_FILE = "audit.json"
LOGS_DIR = "logs"
FLWR_LOG = "flwr.log"
SUPERLINK_LOG = "superlink.log"
FLWR_HOME_DIR = ".flwr"
DEPLOY_DIR = "deploy"
EXPORT_DIR = "export"
EXPORT_DOC = "export.json"
EXPORT_TABLE = "export.md"
PRIVACY_ATTACKS_DIR = "privacy_attacks"
PRIVACY_ATTACK_RESULTS = "results.json"
EXPLAIN_DIR = "explain"
EXPLAIN_RESULTS = "results.json"
STORE_DIR = "data"


@dataclass(frozen=True)
class RunDir:
    """The paths of the files in one run directory.

    Parameters
    ----------
    path : Path
        The run directory.
    """

    path: Path

    @property
    def metrics(self) -> Path:
        """``metrics.json``: the run's figures."""
        return self.path / METRICS_FILE

    @property
    def checkpoint(self) -> Path:
        """``checkpoint.pt``: the state ``--resume`` continues from."""
        return self.path / CHECKPOINT_FILE

    @property
    def model(self) -> Path:
        """``model.pt``: the final global model's state dict."""
        return self.path / MODEL_FILE

    @property
    def report(self) -> Path:
        """``report.html``: the run's report."""
        return self.path / REPORT_FILE

    @property
    def figures(self) -> Path:
        """Where the report's plots go: the run directory itself."""
        return self.path

    @property
    def scenario(self) -> Path:
        """``scenario.yaml``: the scenario as run."""
        return self.path / SCENARIO_FILE

    @property
    def audit(self) -> Path:
        """``audit.json``: the canary audit of the finished run."""
        return self.path / AUDIT_FILE

    @property
    def logs(self) -> Path:
        """``logs/``: Flower's and Ray's output of a simulation."""
        return self.path / LOGS_DIR

    @property
    def flwr_log(self) -> Path:
        """``logs/flwr.log``: the streamed output of ``flwr run``."""
        return self.logs / FLWR_LOG

    @property
    def superlink_log(self) -> Path:
        """``logs/superlink.log``: the simulation SuperLink's output."""
        return self.logs / SUPERLINK_LOG

    @property
    def data(self) -> Path:
        """``data/``: the simulation's federation store (``fedrobust.data.store``)."""
        return self.path / STORE_DIR

    @property
    def flwr_home(self) -> Path:
        """``.flwr/``: the simulation SuperLink's private ``FLWR_HOME``."""
        return self.path / FLWR_HOME_DIR

    @property
    def deploy(self) -> Path:
        """``deploy/``: credentials and logs of a local deployment (the default)."""
        return self.path / DEPLOY_DIR

    @property
    def export(self) -> Path:
        """``export/``: exported models and their table (the default)."""
        return self.path / EXPORT_DIR

    @property
    def privacy_attacks(self) -> Path:
        """``privacy_attacks/``: recorded updates, results and pictures of the attacks."""
        return self.path / PRIVACY_ATTACKS_DIR

    @property
    def privacy_attack_results(self) -> Path:
        """``privacy_attacks/results.json``: the attacks' figures (the report reads it)."""
        return self.privacy_attacks / PRIVACY_ATTACK_RESULTS

    @property
    def explain(self) -> Path:
        """``explain/``: attribution figures and maps (``fedrobust.explain``)."""
        return self.path / EXPLAIN_DIR

    @property
    def explain_results(self) -> Path:
        """``explain/results.json``: each method's figures (the report reads it)."""
        return self.explain / EXPLAIN_RESULTS


def fsync_dir(directory: Path) -> None:
    """Make the renames and removals in ``directory`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file so readers never see a partial one and the rename survives a crash.

    ``write`` fills a temporary file beside ``path``; it is flushed to disk, renamed over
    ``path``, and the directory is flushed too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def discard_checkpoint(run_dir: Path) -> None:
    """Remove ``run_dir/checkpoint.pt``, durably: a fresh run never resumes an older one."""
    path = RunDir(run_dir).checkpoint
    if path.exists() or path.is_symlink():
        path.unlink()
        fsync_dir(run_dir)


def read_json_results(path: Path) -> dict[str, Any]:
    """A results file of a run (``privacy_attacks/results.json``, ``explain/results.json``)
    as a dict; an empty dict when it does not exist yet.

    Raises
    ------
    FedrobustError
        Naming the file, when it exists but cannot be read as JSON.
    """
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise FedrobustError(str(path), f"unreadable ({exc})") from None
