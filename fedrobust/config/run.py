"""The ``simulation`` and ``output`` sections: resources and where results go."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from fedrobust.config.base import Section
from fedrobust.tracking.config import MlflowConfig


class SimulationConfig(Section):
    """Flower simulation (Ray backend) resources.

    Parameters
    ----------
    cpus_per_client : int
        CPUs reserved per ClientApp actor (sets how many run at once).
    gpus_per_client : float
        GPUs reserved per ClientApp actor (0 on a CPU machine).
    num_cpus : int
        CPUs Ray may use in total (default: all).
    timeout : float
        Seconds the server waits for a round's replies.
    """

    cpus_per_client: Annotated[int, Field(ge=1)] = 1
    gpus_per_client: Annotated[float, Field(ge=0)] = 0.0
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    timeout: Annotated[float, Field(gt=0)] = 600.0


class OutputConfig(Section):
    """Where results go, and the live trackers that follow the run.

    Parameters
    ----------
    dir : str
        Run directory (default ``runs/<name>``); ``--out`` overrides it.
    tensorboard : bool
        Write each round's figures (scalars) and per-client figures (histograms) to
        ``DIR/tb/`` as the round finishes (needs ``fedrobust[tracking]``).
    mlflow : MlflowConfig
        Log the run to MLflow as it goes: the scenario as parameters, each round's
        figures (step = round), the report, metrics.json and model.pt as artifacts
        (needs ``fedrobust[tracking]``); ``true`` takes the defaults (a local
        ``file:`` store beside the run directory). Default: off.
    """

    dir: str | None = None
    tensorboard: bool = False
    mlflow: MlflowConfig | None = None

    @field_validator("mlflow", mode="before")
    @classmethod
    def _mlflow_switch(cls, value: object) -> object:
        # ``mlflow: true`` is the default section, ``mlflow: false`` none.
        if isinstance(value, bool):
            return {} if value else None
        return value
