"""The checks ``run`` and ``deploy`` make on the data before any process starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def preflight(
    scenario: Any, simulation: bool = True, run_dir: Path | None = None
) -> tuple[Any, str | None]:
    """Load the data and try what can fail on it, before any process starts.

    Given the simulation's ``run_dir``, the data are written to its federation store
    first and read from there (:func:`fedrobust.simulation.prepare_store`), so this
    process never holds the whole federation in memory.

    The checks are :func:`fedrobust.config.checks.check_with_data`, which the ServerApp
    runs too, after :func:`fedrobust.tracking.check_tracking` (a tracker's package is
    missing). Returns the federation and the privacy plan to print (None without DP).
    """
    from fedrobust.config.checks import check_with_data
    from fedrobust.explain.config import check_explain
    from fedrobust.extras import require
    from fedrobust.privacy.canaries import scenario_federation
    from fedrobust.simulation import check_simulation, prepare_store
    from fedrobust.tracking import check_tracking
    from fedrobust.train.device import check_simulation_device

    check_tracking(scenario)  # output.tensorboard / output.mlflow without their package
    check_explain(scenario.evaluation.explain)  # evaluation.explain without captum
    if scenario.evaluation.privacy_attacks is not None:  # reconstructions, ROC curves
        require("evaluation.privacy_attacks", "matplotlib")
    if simulation:
        check_simulation()  # Ray: the simulation extra
        check_simulation_device(scenario.train.device, scenario.simulation.gpus_per_client)
    store = prepare_store(scenario, run_dir) if simulation and run_dir is not None else None
    fed = scenario_federation(scenario, store)  # data errors surface here, exit 2
    return fed, check_with_data(scenario, fed)
