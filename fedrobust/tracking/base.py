"""Trackers: what a tracker is (:class:`Tracker`), the files they keep in a run
directory, and the check that their optional packages are installed.

TensorBoard and MLflow are optional packages, imported only when a scenario asks for
them (:mod:`fedrobust.tracking.session` opens, feeds and closes them);
:func:`check_tracking` refuses a missing one before launch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedrobust.extras import require

if TYPE_CHECKING:
    from fedrobust.scenario import Scenario


#: ``DIR/tb/``: TensorBoard's event files.
TENSORBOARD_DIR = "tb"
#: ``DIR/tracking.json``: the MLflow run a resumed run continues.
TRACKING_FILE = "tracking.json"
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
    if output.tensorboard:
        require("output.tensorboard", "tensorboard")
    if output.mlflow is not None:
        require("output.mlflow", "mlflow")
