"""SecAgg+ as a transport of the round loop, on Flower's message API.

Four exchanges of ``train.secagg`` messages with the sampled clients (setup, share_keys,
collect_masked_vectors, which carries the round's training recipe: the client runs its
local round, then masks its update; unmask), driven by
:class:`fedrobust.secagg.SecAggServer`. The server never holds an individual update:
only the masked sum, unmasked at the end into the weighted mean of the updates of the
clients that sent masked vectors. The round's :class:`RoundOutcome` hands the strategy
that mean as ``k`` identical replies for the ``k`` contributors, so FedAvg, FedAdam and
client-level DP noise (calibrated to ``k``) apply to the aggregate exactly as without
SecAgg. Every stage's replies pass the same screening as a plain round's
(:func:`fedrobust.federation.screening.screen`).
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrobust.federation.records import with_records
from fedrobust.federation.screening import ReplyContract, contract_problem, metrics_problem, screen
from fedrobust.federation.server_hooks import RoundOutcome
from fedrobust.robust.updates import apply_delta, float_keys
from fedrobust.scenario import Scenario
from fedrobust.secagg import SecAggFailure, SecAggServer, Stage
from fedrobust.secagg.records import ARRAYS_KEY, CONFIG_KEY, from_records, to_records
from fedrobust.seeds import Stream, stream
from fedrobust.strategy.registry import reply_contract

MESSAGE_TYPE = "train.secagg"
log = logging.getLogger("fedrobust.server")


def secagg_round(
    grid: Grid,
    scenario: Scenario,
    rnd: int,
    instructions: list[Message],
    global_arrays: ArrayRecord,
    max_weight: float,
    sampled: dict[int, int] | None = None,
) -> RoundOutcome:
    """Run the four SecAgg+ stages with the nodes ``instructions`` are addressed to.

    Parameters
    ----------
    grid : Grid
        Flower's grid.
    scenario : Scenario
        Its ``privacy.secure_aggregation`` section configures the protocol.
    rnd : int
        The round (seeds simulated dropouts; the share groups only in reproducible runs).
    instructions : list[Message]
        The strategy's training messages (global arrays and per-client recipe).
    global_arrays : ArrayRecord
        The global model the clients start from.
    max_weight : float
        Largest client weight (``max_weight`` of the section, else the largest client).
    sampled : dict[int, int], optional
        Node id -> partition id (orders replies); default: the instructions' order.

    Returns
    -------
    RoundOutcome
        ``figures["secure_aggregation"]`` holds survivors and dropouts per stage,
        clipped values, seconds, and the failure reason when the round yielded no
        aggregate.
    """
    cfg = scenario.privacy.secure_aggregation
    assert cfg is not None
    started = time.monotonic()
    keys = float_keys(global_arrays)
    reads = reply_contract(scenario.strategy.name).metrics  # e.g. FedNova's fednova-a
    nodes = [m.metadata.dst_node_id for m in instructions]
    sampled = sampled or {node: i for i, node in enumerate(nodes)}
    server = SecAggServer(
        cfg.params(max_weight),
        nodes,
        [tuple(global_arrays[k].shape) for k in keys],
        rng=graph_rng(scenario, rnd),
    )
    outcome = RoundOutcome()
    trained: dict[int, Message] = {}
    drop_rng = stream(scenario.seed, Stream.SECAGG_DROPOUT, rnd)
    by_node = {m.metadata.dst_node_id: m for m in instructions}
    failure = None
    for _ in range(4):
        stage = server.next_stage
        assert stage is not None
        out = []
        for node, stage_msg in server.messages().items():
            content = RecordDict()
            if stage == Stage.COLLECT_MASKED_VECTORS:  # train now, then mask the update
                inst = by_node[node].content
                content["arrays"] = inst.array_records["arrays"]
                content["config"] = inst.config_records["config"]
            out.append(
                Message(to_records(stage_msg, content), dst_node_id=node, message_type=MESSAGE_TYPE)
            )
        replies = _collect(grid, out, cfg.timeout, outcome, stage, sampled, rnd, reads)
        if stage == Stage.COLLECT_MASKED_VECTORS:
            trained = {m.metadata.src_node_id: m for m in replies}
        decoded = _simulate_dropout(
            {m.metadata.src_node_id: from_records(m.content) for m in replies},
            len(out), outcome, stage, drop_rng, scenario,
        )  # fmt: skip
        failure = server.receive(decoded)
        if failure is not None:
            break
    outcome.trained = list(trained.values())
    result = failure if failure is not None else server.aggregate()
    figures: dict[str, Any] = {
        "sampled": len(nodes),
        "survivors": {s: len(v) for s, v in server.survivors.items()},
        "dropouts": dict(server.dropouts),
        "clipped": server.clipped,
        "failure": None,
    }
    if isinstance(result, SecAggFailure):
        figures["failure"] = f"{result.stage}: {result.reason}"
    elif isinstance(mean := result.weighted_mean(), SecAggFailure):
        figures["failure"] = f"{mean.stage}: {mean.reason}"
    else:
        # in partition order, as a plain round's replies
        contributors = sorted(server.survivors[Stage.COLLECT_MASKED_VECTORS], key=sampled.get)
        outcome.contributors = [trained[node] for node in contributors]
        figures["clipped"] = result.clipped
        aggregate = apply_delta(global_arrays, np.concatenate([m.ravel() for m in mean]))
        outcome.replies = [
            with_records(m, drop=(CONFIG_KEY, ARRAYS_KEY), arrays=aggregate)
            for m in outcome.contributors
        ]
    if figures["failure"]:
        log.warning("round %d: SecAgg+ produced no aggregate: %s", rnd, figures["failure"])
    figures["contributors"] = len(outcome.contributors)
    figures["seconds"] = round(time.monotonic() - started, 3)
    outcome.figures = {"secure_aggregation": figures}
    return outcome


def graph_rng(scenario: Scenario, rnd: int) -> random.Random:
    """The source of a round's neighbour graph (which clients share with which).

    Secret by default (256 bits of the operating system's entropy): a graph derived from the
    public seed would let anyone who knows it, the server included, predict each client's
    neighbours and place chosen clients around a victim. Derived from the seed and the round
    only under ``privacy.dp.reproducible`` (a run that already says ``privacy_valid: false``).

    Parameters
    ----------
    scenario : Scenario
        Its ``seed`` and ``privacy.dp.reproducible``.
    rnd : int
        The round.

    Returns
    -------
    random.Random
        The generator that shuffles the ring.
    """
    if scenario.privacy.dp.reproducible:
        return random.Random(f"{scenario.seed}-{rnd}")
    return random.Random(secrets.randbits(256))


def _stage_problem(
    msg: Message, stage: Stage, rnd: int | None = None, metrics: tuple[str, ...] = ()
) -> str | None:
    """Why a stage reply is unusable: it does not decode, or (collect_masked_vectors)
    its training metrics do not (or echo another round than ``rnd``, or lack a metric
    the strategy reads: ``metrics``, e.g. FedNova's ``fednova-a``)."""
    try:
        from_records(msg.content)
    except (KeyError, ValueError, TypeError):
        return "malformed"
    if stage != Stage.COLLECT_MASKED_VECTORS:
        return None
    problem = metrics_problem(msg, rnd=rnd)
    if problem is None and metrics:  # the client drops out before its mask is removed
        problem = contract_problem(msg, ArrayRecord(), ReplyContract(metrics=metrics))
    return problem


def _collect(
    grid: Grid,
    messages: list[Message],
    timeout: float,
    outcome: RoundOutcome,
    stage: Stage,
    sampled: dict[int, int],
    rnd: int | None = None,
    metrics: tuple[str, ...] = (),
) -> list[Message]:
    """Send one stage's messages; return the sound replies, counting the others
    (training replies must echo round ``rnd`` and hold the strategy's ``metrics``)."""
    asked = {m.metadata.dst_node_id: sampled[m.metadata.dst_node_id] for m in messages}
    replies = grid.send_and_receive(messages, timeout=timeout)
    sound, dropped, refused = screen(
        replies, asked, messages, lambda m: _stage_problem(m, stage, rnd, metrics)
    )
    outcome.dropped.update(dropped)
    outcome.refused |= refused
    return sound


def _simulate_dropout(
    replies: dict[int, dict[str, Any]],
    sent: int,
    outcome: RoundOutcome,
    stage: Stage,
    drop_rng: np.random.Generator,
    scenario: Scenario,
) -> dict[int, dict[str, Any]]:
    """For tests: discard a seeded share of one stage's replies (``simulate_dropout``)."""
    simulated = scenario.privacy.secure_aggregation.simulate_dropout  # type: ignore[union-attr]
    if simulated is None or simulated.stage != str(stage) or not replies:
        return replies
    count = int(round(simulated.fraction * sent))
    order = sorted(replies)  # node ids are 64-bit unsigned: choose by index
    lost = drop_rng.choice(len(order), size=min(count, len(order)), replace=False)
    for index in lost:
        del replies[order[int(index)]]
    if count:
        outcome.dropped["simulated_dropout"] += len(lost)
    return replies
