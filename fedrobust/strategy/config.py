"""The ``strategy`` section: the server update rule, from :mod:`fedrobust.strategy.registry`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, check_registered


class StrategyConfig(Section):
    """Server update rule (Flower message-API strategies).

    Parameters
    ----------
    name : str
        A registered strategy (:func:`fedrobust.strategy.registry.known_strategies`):
        fedavg | fedprox | fedadam | fedyogi | fedavgm, or a client-drift algorithm:
        scaffold (control variates, :mod:`fedrobust.strategy.scaffold`) | feddyn
        (dynamic regulariser, :mod:`fedrobust.strategy.feddyn`) | fednova (normalised
        averaging, :mod:`fedrobust.strategy.fednova`). The client-drift ones refuse
        client-level DP; scaffold and fednova refuse robust defences, scaffold and feddyn
        SecAgg+ (:mod:`fedrobust.config.compat`).
    proximal_mu : float
        FedProx proximal term weight.
    server_lr : float
        Server learning rate (FedAdam/FedYogi ``eta``, FedAvgM ``server_learning_rate``,
        SCAFFOLD's global step ``η_g``, default 1).
    beta_1, beta_2 : float
        FedAdam/FedYogi moment decay rates.
    tau : float
        FedAdam/FedYogi adaptivity.
    server_momentum : float
        FedAvgM server momentum.
    alpha : float
        FedDyn's regulariser weight ``α`` (> 0).
    """

    name: str = "fedavg"
    proximal_mu: Annotated[float, Field(ge=0)] = 0.01
    server_lr: Annotated[float, Field(gt=0)] | None = None
    beta_1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta_2: Annotated[float, Field(ge=0, lt=1)] = 0.99
    tau: Annotated[float, Field(gt=0)] = 1e-3
    server_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    alpha: Annotated[float, Field(gt=0)] = 0.01

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from fedrobust.strategy.registry import known_strategies

        return check_registered(value, "strategy", known_strategies())

    def applicable(self) -> set[str]:
        from fedrobust.strategy.registry import strategy_options

        return strategy_options(self.name) | {"name"}

    @model_validator(mode="after")
    def _fields_fit_name(self) -> StrategyConfig:
        self.check_applicable(f"strategy '{self.name}'")
        return self
