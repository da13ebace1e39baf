"""User-level DP-FedAvg (``privacy.dp.mode: client``) on Flower's DP strategy wrappers.

Each client's update is clipped to a norm (on the client with Flower's clipping mods,
or on the server), the server averages the clipped updates with equal weights and adds
Gaussian noise of standard deviation ``sigma * C / clients aggregated`` (McMahan et al.
2018, https://arxiv.org/abs/1710.06963; adaptive clipping: Andrew et al. 2021,
https://arxiv.org/abs/1905.03871).

What the plain wrappers leave to the caller, done here:

- the average must be unweighted (a client weighted above ``1 / k`` has a larger
  sensitivity than the noise assumes): clients report :data:`UNIFORM_WEIGHT` = 1 and
  FedAvg weights by it;
- the noise is scaled to the clients actually aggregated (dropped replies raise it),
  and drawn from secret entropy (:mod:`fedrobust.seeds`);
- Flower 1.42's adaptive wrappers update the clipping norm before adding the noise, so
  a shrinking norm gives less noise than the norm the round was clipped at needs. Our
  subclasses add the noise at the norm the round was clipped with.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MessageType, MetricRecord
from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from fedrobust.errors import FedrobustError
from fedrobust.privacy.plan import client_level_sigma
from fedrobust.scenario import Scenario
from fedrobust.seeds import Stream, secret_legacy_seed

UNIFORM_WEIGHT = "dp-weight"
CLIENT_CLIPPING = "dp-client-clipping"  # config key: "fixed" | "adaptive"


class _NoiseForAggregated:
    """Mixin: noise for the clients actually averaged (a dropped reply raises it), drawn
    from secret entropy unless ``privacy.dp.reproducible`` (Flower draws from np.random)."""

    num_sampled_clients: int
    seed: int = 0
    reproducible: bool = False

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.num_sampled_clients = len(replies)
        if self.reproducible:
            np.random.seed([self.seed, int(Stream.CLIENT_DP_NOISE), server_round])
        else:
            np.random.seed(secret_legacy_seed())
        return super().aggregate_train(server_round, replies)  # type: ignore[misc]


class _NoiseAtClippedNorm(_NoiseForAggregated):
    """Mixin: add the round's noise at the clipping norm the round was clipped with."""

    clipping_norm: float

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self._round_norm = self.clipping_norm
        return super().aggregate_train(server_round, replies)

    def _add_noise_to_aggregated_arrays(self, aggregated: ArrayRecord) -> ArrayRecord:
        updated, self.clipping_norm = self.clipping_norm, self._round_norm
        try:
            return super()._add_noise_to_aggregated_arrays(aggregated)  # type: ignore[misc]
        finally:
            self.clipping_norm = updated


class ServerSideAdaptiveClipping(
    _NoiseAtClippedNorm, DifferentialPrivacyServerSideAdaptiveClipping
):
    """Flower's server-side adaptive clipping, noised at the round's clipping norm."""


class ClientSideAdaptiveClipping(
    _NoiseAtClippedNorm, DifferentialPrivacyClientSideAdaptiveClipping
):
    """Flower's client-side adaptive clipping, noised at the round's clipping norm."""


class ServerSideFixedClipping(_NoiseForAggregated, DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed clipping, noised for the clients aggregated."""


class ClientSideFixedClipping(_NoiseForAggregated, DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side fixed clipping, noised for the clients aggregated."""


def wrap_client_dp(strategy: Strategy, scenario: Scenario) -> Strategy:
    """Wrap ``strategy`` (FedAvg or FedProx) for user-level DP as the scenario says."""
    dp = scenario.privacy.dp
    sigma = client_level_sigma(scenario)
    sampled = scenario.sampled_per_round()
    wrapped: _NoiseForAggregated
    try:
        if dp.clipping == "fixed":
            fixed = ClientSideFixedClipping if dp.side == "client" else ServerSideFixedClipping
            wrapped = fixed(strategy, sigma, dp.clipping_norm, sampled)
        else:
            adaptive = (
                ClientSideAdaptiveClipping if dp.side == "client" else ServerSideAdaptiveClipping
            )
            wrapped = adaptive(
                strategy,
                sigma,
                sampled,
                initial_clipping_norm=dp.clipping_norm,
                target_clipped_quantile=dp.target_clipped_quantile,
                clip_norm_lr=dp.clip_norm_lr,
                clipped_count_stddev=dp.clipped_count_stddev,
            )
    except ValueError as exc:
        raise FedrobustError("privacy.dp", str(exc)) from None
    wrapped.seed, wrapped.reproducible = scenario.seed, dp.reproducible
    return wrapped  # type: ignore[return-value]


def client_dp_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Apply Flower's client-side clipping mod when the round's recipe asks for it."""
    if msg.metadata.message_type == MessageType.TRAIN:
        config = msg.content.config_records.get("config")
        clipping = None if config is None else config.get(CLIENT_CLIPPING)
        if clipping == "fixed":
            return fixedclipping_mod(msg, context, call_next)
        if clipping == "adaptive":
            return adaptiveclipping_mod(msg, context, call_next)
    return call_next(msg, context)
