"""Live experiment tracking: TensorBoard and MLflow records of a run, written by the
server as rounds finish (``output.tensorboard``, ``output.mlflow``).

Light on import (every process that reads a scenario imports the section): the
optional packages are imported only when a tracker opens.
"""

from fedrobust.tracking.base import TENSORBOARD_DIR, TRACKING_FILE, Tracker, check_tracking
from fedrobust.tracking.config import MlflowConfig
from fedrobust.tracking.session import close_trackers, forward_round, open_trackers

__all__ = [
    "TENSORBOARD_DIR",
    "TRACKING_FILE",
    "MlflowConfig",
    "Tracker",
    "check_tracking",
    "close_trackers",
    "forward_round",
    "open_trackers",
]
