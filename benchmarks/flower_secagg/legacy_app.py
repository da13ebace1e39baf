"""Flower's legacy SecAgg+ path with our model and data: the benchmark's baseline.

Reads the same scenario as fedrobust (data, model, training recipe), trains with
fedrobust's ``local_train`` in a ``NumPyClient``, and aggregates with Flower's
``FedAvg`` through ``SecAggPlusWorkflow`` (``secagg = true``) or the plain
``DefaultWorkflow``. Each round's seconds (configure_fit to aggregate_fit) go to
``out`` as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Context, Message
from flwr.client import Client, ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.scenario import load_scenario
from fedrobust.train import local_train


class Trainer(NumPyClient):
    def __init__(self, scenario_path: str, pid: int) -> None:
        self.scenario = load_scenario(scenario_path)
        self.fed = build_federation(self.scenario.data, self.scenario.seed)
        self.data = self.fed.clients[pid]
        self.model = build_model(self.scenario.model, self.fed.spec)

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Scalar]
    ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        keys = list(self.model.state_dict())
        self.model.load_state_dict(
            {k: torch.tensor(v) for k, v in zip(keys, parameters, strict=True)}
        )
        local_train(self.model, self.data.x_train, self.data.y_train, train=self.scenario.train,
                    num_classes=self.fed.spec.num_classes, seed=0)  # fmt: skip
        weights = [v.detach().numpy() for v in self.model.state_dict().values()]
        return weights, len(self.data.y_train), {}


def client_fn(context: Context) -> Client:
    torch.set_num_threads(1)
    pid = int(context.node_config["partition-id"])
    return Trainer(str(context.run_config["scenario"]), pid).to_client()


def secagg_when_asked(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's ``secaggplus_mod`` in SecAgg runs; plain runs go straight to the client."""
    if bool(context.run_config["secagg"]):
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


client = ClientApp(client_fn=client_fn, mods=[secagg_when_asked])


class TimedFedAvg(FedAvg):
    def __init__(self, out: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out = out
        self.started: dict[int, float] = {}
        self.seconds: list[float] = []

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.started[server_round] = time.monotonic()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[Any],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        out = super().aggregate_fit(server_round, results, failures)
        self.seconds.append(time.monotonic() - self.started[server_round])
        self.out.write_text(
            json.dumps(
                {
                    "round_seconds": self.seconds,
                    "aggregated": len(results),
                    "failures": len(failures),
                }
            )
        )
        return out


server = ServerApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    scenario = load_scenario(str(context.run_config["scenario"]))
    fed = build_federation(scenario.data, scenario.seed)
    torch.manual_seed(scenario.seed)
    model = build_model(scenario.model, fed.spec)
    n = scenario.data.partition.num_clients
    strategy = TimedFedAvg(
        Path(str(context.run_config["out"])),
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_available_clients=n,
        initial_parameters=ndarrays_to_parameters(
            [v.detach().numpy() for v in model.state_dict().values()]),
    )  # fmt: skip
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=scenario.train.rounds),
                           strategy=strategy)  # fmt: skip
    cfg = scenario.privacy.secure_aggregation
    if bool(context.run_config["secagg"]) and cfg is not None:
        largest = float(max(len(c.y_train) for c in fed.clients))
        fit = SecAggPlusWorkflow(num_shares=cfg.num_shares,
                                 reconstruction_threshold=cfg.reconstruction_threshold,
                                 max_weight=largest)  # fmt: skip
        workflow = DefaultWorkflow(fit_workflow=fit)
    else:
        workflow = DefaultWorkflow()
    workflow(grid, legacy)
