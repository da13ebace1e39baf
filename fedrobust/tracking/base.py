"""Trackers: the run's figures sent, as rounds finish, to TensorBoard and MLflow.

The run's recorder (:meth:`fedrobust.report.metrics.RunRecorder.start`) opens them
(:func:`open_trackers`), hands each one every round right after metrics.json is saved
(:func:`forward_round`), and closes them after the report (:func:`close_trackers`,
called by ``server/loop.py`` through ``RunRecorder.close_trackers``). A tracker is a side
channel: one that fails is dropped with a warning and the run goes on. TensorBoard and
MLflow are optional packages, imported only when a scenario asks for them;
:func:`check_tracking` refuses a missing one before launch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedrobust.errors import FedrobustError

if TYPE_CHECKING:
    from fedrobust.scenario import Scenario

log = logging.getLogger("fedrobust.tracking")

#: ``DIR/tb/``: TensorBoard's event files.
TENSORBOARD_DIR = "tb"
#: ``DIR/tracking.json``: the MLflow run a resumed run continues.
TRACKING_FILE = "tracking.json"
#: What ``pip`` installs the optional trackers with.
INSTALL_HINT = "pip install 'fedrobust[tracking]'"
#: The statuses a run ends with (metrics.json's vocabulary).
COMPLETED, FAILED = "completed", "failed"


class Tracker:
    """Receives a run's rounds as they finish; the base does nothing.

    Attributes
    ----------
    name : str
        How warnings name the tracker.
    """

    name = "tracker"

    def log_round(self, figures: dict[str, Any]) -> None:
        """Record one round's row of metrics.json (``round`` 0: the initial model)."""

    def close(self, run_dir: Path, status: str) -> None:
        """End the record; ``status`` is ``completed`` or ``failed``; the report and
        ``model.pt`` (after a completed run) are in ``run_dir``."""


def check_tracking(scenario: Scenario) -> None:
    """Refuse a tracker whose package is not installed.

    Raises
    ------
    FedrobustError
        Naming ``output.tensorboard`` or ``output.mlflow`` and the install command.
    """
    output = scenario.output
    if output.tensorboard and find_spec("tensorboard") is None:
        raise FedrobustError("output.tensorboard", f"needs the tensorboard package: {INSTALL_HINT}")
    if output.mlflow is not None and find_spec("mlflow") is None:
        raise FedrobustError("output.mlflow", f"needs the mlflow package: {INSTALL_HINT}")


def open_trackers(scenario: Scenario, run_dir: Path, resumed_after: int) -> list[Tracker]:
    """The trackers ``scenario.output`` asks for, ready for round ``resumed_after + 1``.

    Parameters
    ----------
    scenario : Scenario
        The validated scenario.
    run_dir : Path
        The run directory.
    resumed_after : int
        The checkpoint's round on a resume (the trackers continue their records), else 0.

    Returns
    -------
    list[Tracker]
        Those that opened; one that could not (a tracking server out of reach) is left
        out with a warning.

    Raises
    ------
    FedrobustError
        A tracker's package is not installed (:func:`check_tracking`).
    """
    check_tracking(scenario)
    trackers: list[Tracker] = []
    if scenario.output.tensorboard:
        try:
            from fedrobust.tracking.tensorboard import TensorBoardTracker

            trackers.append(TensorBoardTracker(run_dir, resumed_after))
        except Exception:  # noqa: BLE001 - a side channel never stops the run
            log.warning("TensorBoard: could not open; the run goes on without it", exc_info=True)
    if scenario.output.mlflow is not None:
        try:
            from fedrobust.tracking.mlflow_tracker import MlflowTracker

            trackers.append(MlflowTracker(scenario, run_dir, resumed_after))
        except Exception:  # noqa: BLE001 - a side channel never stops the run
            log.warning("MLflow: could not open; the run goes on without it", exc_info=True)
    return trackers


def forward_round(
    trackers: Sequence[Tracker], figures: dict[str, Any], run_dir: Path
) -> list[Tracker]:
    """Hand ``figures`` to each tracker; return those that took it.

    A tracker that raises is warned about once, closed as failed (best effort) and
    dropped: the run goes on.
    """
    kept: list[Tracker] = []
    for tracker in trackers:
        try:
            tracker.log_round(figures)
        except Exception:  # noqa: BLE001 - a side channel never stops the run
            log.warning("%s: failed; it records no more of this run", tracker.name, exc_info=True)
            _close_quietly(tracker, run_dir, FAILED)
        else:
            kept.append(tracker)
    return kept


def close_trackers(trackers: Sequence[Tracker], run_dir: Path, status: str) -> None:
    """Close every tracker with the run's ``status``; never raises (best effort)."""
    for tracker in trackers:
        _close_quietly(tracker, run_dir, status)


def _close_quietly(tracker: Tracker, run_dir: Path, status: str) -> None:
    try:
        tracker.close(run_dir, status)
    except Exception:  # noqa: BLE001 - a side channel never hides the run's outcome
        log.warning("%s: could not close", tracker.name, exc_info=True)
