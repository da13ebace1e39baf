"""``output.tensorboard``: scalars and per-client histograms in ``DIR/tb/``, per round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from fedrobust.tracking.base import TENSORBOARD_DIR, Tracker
from fedrobust.tracking.flatten import client_series, flatten_figures


class TensorBoardTracker(Tracker):
    """Writes each round's scalars (step = round) and a histogram of each per-client
    figure (``clients/<figure>``), flushed at once so TensorBoard shows the run live.

    Parameters
    ----------
    run_dir : Path
        The run directory; the event files go to ``run_dir/tb/``.
    resumed_after : int
        The checkpoint's round on a resume, else 0. A fresh run removes the event files
        of an earlier run in the directory; a resumed one hides (TensorBoard's purge)
        what an interrupted run wrote after its checkpoint, since those rounds run again.
    """

    name = "TensorBoard"

    def __init__(self, run_dir: Path, resumed_after: int) -> None:
        directory = run_dir / TENSORBOARD_DIR
        if resumed_after == 0:
            for old in directory.glob("events.out.tfevents.*"):
                old.unlink()
        purge_step = resumed_after + 1 if resumed_after else None
        self.writer = SummaryWriter(str(directory), purge_step=purge_step)

    def log_round(self, figures: dict[str, Any]) -> None:
        """Write the round's scalars and per-client histograms, then flush."""
        step = int(figures["round"])
        for tag, value in flatten_figures(figures).items():
            self.writer.add_scalar(tag, value, step)
        for key, values in client_series(figures.get("clients") or []).items():
            self.writer.add_histogram(f"clients/{key}", np.asarray(values), step)
        self.writer.flush()

    def close(self, run_dir: Path, status: str) -> None:
        """Flush and close the event file."""
        self.writer.close()
