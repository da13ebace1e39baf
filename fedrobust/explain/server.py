"""``evaluation.explain`` at the end of a run: attribution maps of the kept model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from fedrobust.explain.config import ExplainConfig
from fedrobust.federation.server_hooks import ServerHook, ServerSetup
from fedrobust.rundir import RunDir

log = logging.getLogger("fedrobust.explain")


class ExplainHook(ServerHook):
    """Explain the model the run keeps (:func:`fedrobust.explain.run.explain_run`).

    It runs after early stopping has restored the model the run keeps. An error here
    never costs the run its model: ``final.explain`` records it instead.
    """

    def __init__(self, setup: ServerSetup, cfg: ExplainConfig, run_dir: Path) -> None:
        self.setup = setup
        self.cfg = cfg
        self.run_dir = run_dir

    @classmethod
    def create(cls, setup: ServerSetup) -> ExplainHook | None:
        cfg = setup.scenario.evaluation.explain
        if cfg is None or setup.run_dir is None:
            return None
        return cls(setup, cfg, setup.run_dir)

    def finish(self, model: nn.Module, totals: dict[str, Any]) -> dict[str, Any]:
        from fedrobust.explain.run import explain_run

        RunDir(self.run_dir).explain_results.unlink(missing_ok=True)  # this run's only
        try:
            summary = explain_run(
                self.run_dir, self.setup.scenario, self.setup.fed, model, self.cfg
            )
        except Exception as exc:  # noqa: BLE001 - an evaluation never costs the run its model
            log.exception("explaining the model failed")
            return {"explain": {"error": f"{type(exc).__name__}: {exc}"}}
        return {"explain": summary}
