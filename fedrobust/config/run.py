"""The ``simulation`` and ``output`` sections: resources and where results go."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, field_error
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
    ray_address : str, optional
        Run the simulation on an existing Ray cluster instead of a local Ray instance
        started for the run: ``auto`` (the cluster this machine belongs to, as
        ``ray start`` left it), ``HOST:PORT`` (its GCS address) or ``ray://HOST:10001``
        (Ray Client). Default: a private local instance (any ``RAY_ADDRESS`` in the
        environment is ignored). The cluster decides the CPUs (``num_cpus`` is refused).
    ray_runtime_env : dict, optional
        Ray's runtime environment for the run's workers (``env_vars``, ``pip``,
        ``working_dir``, ...; https://docs.ray.io/en/latest/ray-core/handling-dependencies.html),
        passed through as Ray's job configuration; needs ``ray_address``.
    """

    cpus_per_client: Annotated[int, Field(ge=1)] = 1
    gpus_per_client: Annotated[float, Field(ge=0)] = 0.0
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    timeout: Annotated[float, Field(gt=0)] = 600.0
    ray_address: Annotated[str, Field(min_length=1)] | None = None
    ray_runtime_env: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _cluster(self) -> SimulationConfig:
        if self.ray_address is None:
            if self.ray_runtime_env is not None:
                raise field_error("ray_runtime_env", "needs simulation.ray_address (a Ray "
                                  "cluster); a local run uses this environment")  # fmt: skip
            return self
        if self.num_cpus is not None:
            raise field_error(
                "num_cpus",
                "does not apply with ray_address: the cluster decides its CPUs "
                "(Ray refuses num_cpus when connecting)",
            )
        address = self.ray_address
        if address != "auto" and not re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d+", address):
            raise field_error("ray_address", f"'{address}' is not auto, HOST:PORT or "
                              "ray://HOST:PORT")  # fmt: skip
        return self


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
