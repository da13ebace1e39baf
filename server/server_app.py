"""fedrobust's Flower ServerApp (message API).

Run configuration (``[tool.flwr.app.config]``, overridden by ``fedrobust run``):
``scenario`` (a YAML path, or the name of a bundled scenario: :mod:`fedrobust.bundled`),
``out-dir`` (default: the scenario's ``output.dir`` or ``runs/<name>``),
``rounds`` and ``seed`` (0 / -1 keep the scenario's values), ``resume`` (continue from
the run directory's checkpoint) and ``token`` (tags this launch in metrics.json).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fedrobust.apps.server.loop import run_federation
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedrobust.bundled import resolve_scenario
from fedrobust.federation.engine import index_pending
from fedrobust.scenario import load_scenario

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Load the scenario named in the run config and run it."""
    cfg = context.run_config
    scenario_path = resolve_scenario(str(cfg.get("scenario", "quickstart")))
    overrides: dict[str, object] = {}
    if int(cfg.get("rounds", 0)) > 0:
        overrides["train.rounds"] = int(cfg["rounds"])
    if int(cfg.get("seed", -1)) >= 0:
        overrides["seed"] = int(cfg["seed"])
    if str(cfg.get("init-from", "")):  # resolved where the command ran (fedrobust run)
        overrides["model.init_from"] = str(cfg["init-from"])
    scenario = load_scenario(scenario_path, overrides)
    out = str(cfg.get("out-dir", "")) or scenario.output.dir or f"runs/{scenario.name}"
    run_dir = Path(out).expanduser()
    if not run_dir.is_absolute():
        run_dir = Path.cwd() / run_dir
    # Our log lines go where Flower's go (the streamed run log, DIR/logs/flwr.log).
    ours = logging.getLogger("fedrobust")
    ours.setLevel(logging.INFO)
    if not ours.handlers:
        for handler in logging.getLogger("flwr").handlers:
            ours.addHandler(handler)
        ours.propagate = False
    index_pending(grid)  # the simulation engine's poll of every node, from an index
    run_federation(
        grid,
        scenario,
        run_dir,
        resume=bool(cfg.get("resume", False)),
        token=str(cfg.get("token", "")),
    )
