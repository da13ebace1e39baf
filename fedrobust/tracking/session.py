"""A run's trackers from open to close.

The run's recorder (:meth:`fedrobust.report.metrics.RunRecorder.start`) opens them
(:func:`open_trackers`), hands each one every round right after metrics.json is saved
(:func:`forward_round`), and closes them after the report (:func:`close_trackers`,
called by ``server/loop.py`` through ``RunRecorder.close_trackers``). A tracker is a side
channel: one that fails is dropped with a warning and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedrobust.tracking.base import FAILED, Tracker, check_tracking

if TYPE_CHECKING:
    from fedrobust.scenario import Scenario

log = logging.getLogger("fedrobust.tracking")


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
