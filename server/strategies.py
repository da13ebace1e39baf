"""Build the Flower message-API strategy named in the scenario.

Sampling is done by our round loop (seeded, by partition id), so every strategy is
built to use all the nodes it is shown (``fraction_train=1.0``, minimum 1).
Flower's own federated evaluation is off: the server evaluates centrally.
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, Strategy

from fedrobust.scenario import StrategyConfig


def build_strategy(cfg: StrategyConfig) -> Strategy:
    """The strategy for ``cfg``: fedavg | fedprox | fedadam | fedyogi | fedavgm."""
    common: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 0,
        "min_available_nodes": 1,
    }
    if cfg.name == "fedavg":
        return FedAvg(**common)
    if cfg.name == "fedprox":
        return FedProx(**common, proximal_mu=cfg.proximal_mu)
    if cfg.name in ("fedadam", "fedyogi"):
        cls = FedAdam if cfg.name == "fedadam" else FedYogi
        options: dict[str, Any] = {"beta_1": cfg.beta_1, "beta_2": cfg.beta_2, "tau": cfg.tau}
        if cfg.server_lr is not None:
            options["eta"] = cfg.server_lr
        if cfg.client_lr is not None:
            options["eta_l"] = cfg.client_lr
        return cls(**common, **options)
    if cfg.name == "fedavgm":
        return FedAvgM(
            **common,
            server_learning_rate=cfg.server_lr if cfg.server_lr is not None else 1.0,
            server_momentum=cfg.server_momentum,
        )
    raise ValueError(f"unknown strategy '{cfg.name}'")
