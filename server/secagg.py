"""Runs one training round through SecAgg+ on Flower's message API.

Four exchanges of ``train.secagg`` messages with the sampled clients (setup, share_keys,
collect_masked_vectors, which carries the round's training recipe: the client trains,
then masks its update; unmask),
driven by :class:`fedrobust.secagg.SecAggServer`. The server never holds an individual
update: only the masked sum, unmasked at the end into the weighted mean of the updates
of the clients that sent masked vectors. The strategy then receives that mean, as
``k`` identical replies for the ``k`` contributors, so FedAvg, FedAdam and client-level
DP noise (calibrated to ``k``) apply to the aggregate exactly as without SecAgg.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrobust.robust.updates import apply_delta, float_keys
from fedrobust.scenario import Scenario
from fedrobust.secagg import SecAggFailure, SecAggServer, Stage
from fedrobust.secagg.records import from_records, to_records
from server.replies import error_reason, replying_node

MESSAGE_TYPE = "train.secagg"


@dataclass
class SecAggOutcome:
    """What a SecAgg+ round produced.

    Parameters
    ----------
    replies : list[Message]
        What the strategy aggregates: ``k`` copies of one reply holding the aggregate
        (empty when the round produced none).
    trained : dict[int, Message]
        Node id -> the masked-vector reply (with training metrics) of every client that
        trained and masked.
    contributors : list[int]
        Node ids whose masked vectors are in the aggregate.
    refused : set[int]
        Nodes that declined the round (e.g. their privacy budget is spent).
    dropped : dict[str, int]
        Replies lost or unusable, by reason.
    figures : dict
        For metrics.json: survivors and dropouts per stage, clipped values, seconds,
        and the failure reason when the round yielded no aggregate.
    """

    replies: list[Message] = field(default_factory=list)
    trained: dict[int, Message] = field(default_factory=dict)
    contributors: list[int] = field(default_factory=list)
    refused: set[int] = field(default_factory=set)
    dropped: dict[str, int] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def secagg_round(
    grid: Grid,
    scenario: Scenario,
    rnd: int,
    instructions: list[Message],
    global_arrays: ArrayRecord,
    max_weight: float,
) -> SecAggOutcome:
    """Run the four SecAgg+ stages with the nodes ``instructions`` are addressed to.

    Parameters
    ----------
    grid : Grid
        Flower's grid.
    scenario : Scenario
        Its ``privacy.secure_aggregation`` section configures the protocol.
    rnd : int
        The round (seeds the share groups and simulated dropouts).
    instructions : list[Message]
        The strategy's training messages (global arrays and per-client recipe).
    global_arrays : ArrayRecord
        The global model the clients start from.
    max_weight : float
        Largest client weight (``max_weight`` of the section, else the largest client).
    """
    cfg = scenario.privacy.secure_aggregation
    assert cfg is not None
    started = time.monotonic()
    keys = float_keys(global_arrays)
    params = cfg.params(max_weight)
    nodes = [m.metadata.dst_node_id for m in instructions]
    server = SecAggServer(
        params,
        nodes,
        [tuple(global_arrays[k].shape) for k in keys],
        rng=random.Random(f"{scenario.seed}-{rnd}"),
    )
    outcome = SecAggOutcome()
    drop_rng = np.random.default_rng([scenario.seed, 9, rnd])

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
            out.append(_message(to_records(stage_msg, content), node))
        replies = _collect(grid, out, cfg.timeout, outcome, stage, drop_rng, scenario)
        failure = server.receive(replies)
        if failure is not None:
            break
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
    else:
        mean = result.weighted_mean()
        if isinstance(mean, SecAggFailure):
            figures["failure"] = f"{mean.stage}: {mean.reason}"
        else:
            outcome.contributors = list(server.survivors[Stage.COLLECT_MASKED_VECTORS])
            figures["clipped"] = result.clipped
            aggregate = apply_delta(global_arrays, np.concatenate([m.ravel() for m in mean]))
            template = outcome.trained[outcome.contributors[0]]
            for node in outcome.contributors:
                reply = copy.copy(template)
                reply.content = RecordDict(
                    {
                        "arrays": aggregate,
                        "metrics": outcome.trained[node].content.metric_records["metrics"],
                    }
                )
                outcome.replies.append(reply)
    figures["contributors"] = len(outcome.contributors)
    figures["seconds"] = round(time.monotonic() - started, 3)
    outcome.figures = figures
    return outcome


def _message(content: RecordDict, node: int) -> Message:
    return Message(content=content, message_type=MESSAGE_TYPE, dst_node_id=node)


def _collect(
    grid: Grid,
    messages: list[Message],
    timeout: float,
    outcome: SecAggOutcome,
    stage: Stage,
    drop_rng: np.random.Generator,
    scenario: Scenario,
) -> dict[int, dict[str, Any]]:
    """Send one stage's messages; return node -> stage reply for the usable replies."""
    replies: dict[int, dict[str, Any]] = {}
    answered = set()
    sent = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node = replying_node(reply, sent)
        answered.add(node)
        if reply.has_error():
            _count(outcome, error_reason(reply))
            continue
        content = reply.content
        if "status" in content.config_records:
            outcome.refused.add(node)
            continue
        try:
            replies[node] = from_records(content)
        except (KeyError, ValueError):
            _count(outcome, "malformed")
            continue
        if stage == Stage.COLLECT_MASKED_VECTORS:
            outcome.trained[node] = reply
    late = len({m.metadata.dst_node_id for m in messages} - answered)
    if late:
        _count(outcome, "timeout", late)
    simulated = scenario.privacy.secure_aggregation.simulate_dropout  # type: ignore[union-attr]
    if simulated is not None and simulated.stage == str(stage) and replies:
        count = int(round(simulated.fraction * len(messages)))
        order = sorted(replies)  # node ids are 64-bit unsigned: choose by index
        lost = drop_rng.choice(len(order), size=min(count, len(order)), replace=False)
        for index in lost:
            del replies[order[int(index)]]
        if count:
            _count(outcome, "simulated_dropout", len(lost))
    return replies


def _count(outcome: SecAggOutcome, reason: str, n: int = 1) -> None:
    outcome.dropped[reason] = outcome.dropped.get(reason, 0) + n
