"""User-level DP: unweighted averages, and noise at the norm the round was clipped with."""

from __future__ import annotations

import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MessageType, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideAdaptiveClipping, FedAvg

from fedrobust.privacy.client_dp import UNIFORM_WEIGHT, ServerSideAdaptiveClipping
from fedrobust.scenario import parse_scenario
from fedrobust.strategy.build import build_strategy

SIZE = 200_000  # enough values to read the noise's standard deviation to ~0.3 %


def reply(node: int, value: float) -> Message:
    md = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="m",
        group_id="1", created_at=time.time(), ttl=60, message_type=MessageType.TRAIN,
    )  # fmt: skip
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.full(SIZE, value, np.float64))}),
            "metrics": MetricRecord({"num-examples": 10 * node, UNIFORM_WEIGHT: 1}),
        }
    )
    return Message(metadata=md, content=content)


def noise_std(cls: type, sigma: float, norm: float, clients: int) -> tuple[float, float]:
    """Aggregate ``clients`` huge updates (all clipped); return (noise std, norm after)."""
    strategy = cls(
        FedAvg(weighted_by_key=UNIFORM_WEIGHT), noise_multiplier=sigma,
        num_sampled_clients=clients, initial_clipping_norm=norm, clipped_count_stddev=10.0,
    )  # fmt: skip
    strategy.current_arrays = ArrayRecord({"w": Array(np.zeros(SIZE, np.float64))})
    strategy.reproducible = True  # ours: noise from (seed 0, round); Flower's: np.random
    strategy.seed = 0
    np.random.seed(0)
    out, _ = strategy.aggregate_train(1, [reply(n, 100.0) for n in range(1, clients + 1)])
    values = out["w"].numpy()
    clipped_mean = norm / np.sqrt(SIZE)  # every update clipped to the norm, spread evenly
    return float(np.std(values - clipped_mean)), strategy.clipping_norm


def test_adaptive_clipping_noise_uses_the_norm_the_round_was_clipped_with() -> None:
    sigma, norm, clients = 2.0, 4.0, 5
    std, after = noise_std(ServerSideAdaptiveClipping, sigma, norm, clients)
    assert after < norm  # every update was clipped, so the norm shrinks for next round
    # Flower's adaptive wrappers scale the update noise up for the count noise
    effective = (sigma**-2 - (2 * 10.0) ** -2) ** -0.5
    assert std == pytest.approx(effective * norm / clients, rel=0.01)
    flower_std, flower_after = noise_std(
        DifferentialPrivacyServerSideAdaptiveClipping, sigma, norm, clients
    )
    assert flower_after < norm
    # Flower's noise follows the shrunken norm: too little for the norm the round used
    assert flower_std == pytest.approx(effective * flower_after / clients, rel=0.01)


def test_client_level_dp_averages_clients_with_equal_weights() -> None:
    sc = parse_scenario(
        {
            "name": "u",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
            "privacy": {"dp": {"mode": "client", "noise_multiplier": 1e-9, "side": "server"}},
        }
    )
    strategy = build_strategy(sc)
    strategy.current_arrays = ArrayRecord({"w": Array(np.zeros(SIZE, np.float64))})
    replies = [reply(1, 1e-4), reply(3, 3e-4)]  # num-examples 10 and 30; norms below 1
    out, _ = strategy.aggregate_train(1, replies)
    assert np.mean(out["w"].numpy()) == pytest.approx(2e-4, rel=1e-3)  # not 2.5e-4
