"""The ``simulation`` and ``output`` sections: resources and where results go."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from fedrobust.config.base import Section


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
    """Where results go.

    Parameters
    ----------
    dir : str
        Run directory (default ``runs/<name>``); ``--out`` overrides it.
    """

    dir: str | None = None
