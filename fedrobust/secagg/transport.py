"""SecAgg+ as a transport of the round loop, on Flower's message API, pipelined across rounds.

A SecAgg+ round is four stages (setup, share_keys, collect_masked_vectors, which carries
the round's training recipe: the client runs its local round, then masks its update;
unmask), driven by :class:`fedrobust.secagg.SecAggServer`. Run one after another they cost
four message exchanges where a plain round costs one. With ``pipeline: true`` (the default)
the next round's first two stages ride on this round's last two::

    exchange A: collect_masked_vectors(r)  +  setup(r + 1)
    exchange B: unmask(r)                  +  share_keys(r + 1)

so a steady-state round costs two exchanges. The next round's clients are known ahead:
the loop samples with :func:`fedrobust.sampling.round_clients`, a function of the round
(also under client-level DP, whose draw is secret but fixed within the server process).
Each round is its own protocol instance with fresh key pairs, mask seeds and neighbour
graph; the two instances in flight share nothing but the envelope, and a client keeps one
state per instance (:mod:`fedrobust.secagg.session`). The first round, a round after a
resume, and a round whose clients differ from the ones prepared (a rejoined node) run all
four stages.

The server never holds an individual update: only the masked sum, unmasked at the end into
the weighted mean of the updates of the clients that sent masked vectors. The round's
:class:`RoundOutcome` hands the strategy that mean as ``k`` identical replies for the ``k``
contributors, so FedAvg, FedAdam and client-level DP noise (calibrated to ``k``) apply to
the aggregate exactly as without SecAgg. Every reply passes the same screening as a plain
round's (:func:`fedrobust.federation.screening.screen`), once per instance it carries.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrobust.federation.exchange import send_and_receive
from fedrobust.federation.records import with_records
from fedrobust.federation.screening import (
    REFUSALS,
    ReplyContract,
    contract_problem,
    metrics_problem,
    replying_node,
    screen,
)
from fedrobust.federation.server_hooks import RoundOutcome
from fedrobust.robust.updates import apply_delta, float_keys
from fedrobust.sampling import round_clients
from fedrobust.scenario import Scenario
from fedrobust.secagg import SecAggFailure, SecAggServer, Stage
from fedrobust.secagg.records import add_part, part_keys, read_parts
from fedrobust.seeds import Stream, stream
from fedrobust.strategy.registry import reply_contract

MESSAGE_TYPE = "train.secagg"
log = logging.getLogger("fedrobust.server")


@dataclass
class Instance:
    """One round's protocol instance on the server, with what it counted so far.

    Parameters
    ----------
    rnd : int
        The round it aggregates.
    server : SecAggServer
        The protocol state.
    sampled : dict[int, int]
        Node id -> partition id of its clients.
    drop_rng : numpy.random.Generator
        Chooses the simulated dropouts (``simulate_dropout``), seeded by the round.
    dropped, refused, stage_seconds, trained
        Replies lost by reason; nodes that declined; seconds of the exchange that carried
        each stage; collect_masked_vectors replies (with training metrics) by node.
    """

    rnd: int
    server: SecAggServer
    sampled: dict[int, int]
    drop_rng: np.random.Generator
    dropped: Counter[str] = field(default_factory=Counter)
    refused: set[int] = field(default_factory=set)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    trained: dict[int, Message] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """Whether the instance still has stages to run."""
        return self.server.failure is None and self.server.next_stage is not None


class SecAggTransport:
    """The round loop's transport for ``privacy.secure_aggregation``.

    Parameters
    ----------
    scenario : Scenario
        Its ``privacy.secure_aggregation`` section configures the protocol.
    max_weight : float
        Largest client weight (``max_weight`` of the section, else the largest client).
    nodes : Mapping[int, int], optional
        Partition id -> node id, kept up to date by the loop (rejoins); needed to prepare
        the next round's clients. Without it no round is pipelined.
    """

    def __init__(
        self, scenario: Scenario, max_weight: float, nodes: Mapping[int, int] | None = None
    ) -> None:
        cfg = scenario.privacy.secure_aggregation
        assert cfg is not None
        self.scenario = scenario
        self.cfg = cfg
        self.max_weight = max_weight
        self.nodes = nodes
        self.pending: Instance | None = None  # the next round, through share_keys

    def __call__(
        self,
        grid: Grid,
        rnd: int,
        instructions: list[Message],
        global_arrays: ArrayRecord,
        sampled: dict[int, int] | None = None,
    ) -> RoundOutcome:
        """Run round ``rnd``'s SecAgg+ stages with the nodes ``instructions`` address.

        Parameters
        ----------
        grid : Grid
            Flower's grid.
        rnd : int
            The round (seeds simulated dropouts; the share groups only in reproducible runs).
        instructions : list[Message]
            The strategy's training messages (global arrays and per-client recipe).
        global_arrays : ArrayRecord
            The global model the clients start from.
        sampled : dict[int, int], optional
            Node id -> partition id (orders replies); default: the instructions' order.

        Returns
        -------
        RoundOutcome
            ``figures["secure_aggregation"]`` holds survivors and dropouts per stage,
            clipped values, seconds, message exchanges, whether the round was prepared
            by the previous one, and the failure reason when it yielded no aggregate.
        """
        started = time.monotonic()
        keys = float_keys(global_arrays)
        shapes = [tuple(global_arrays[k].shape) for k in keys]
        nodes = [m.metadata.dst_node_id for m in instructions]
        sampled = sampled or {node: i for i, node in enumerate(nodes)}
        # a hook may have left some sampled nodes out
        addressed = {node: sampled.get(node, i) for i, node in enumerate(nodes)}
        current, prepared = self._take_pending(rnd, addressed, shapes), True
        if current is None:
            current, prepared = self._instance(rnd, addressed, shapes), False
        training = {m.metadata.dst_node_id: m.content for m in instructions}
        exchanges = 0
        # a round nobody prepared runs its setup and share_keys on its own
        while current.live and current.server.next_stage != Stage.COLLECT_MASKED_VECTORS:
            self._exchange(grid, [current], training)
            exchanges += 1
        # collect_masked_vectors(r) + setup(r + 1), then unmask(r) + share_keys(r + 1)
        upcoming = self._upcoming(rnd, shapes) if current.live else None
        for _ in range(2):
            batch = [i for i in (current, upcoming) if i is not None and i.live]
            if batch:
                self._exchange(grid, batch, training)
                exchanges += 1
        self.pending = upcoming if upcoming is not None and upcoming.live else None
        return self._outcome(current, global_arrays, sampled, started, exchanges, prepared)

    # ----------------------------------------------------------------- instances

    def _instance(self, rnd: int, sampled: dict[int, int], shapes: list[tuple]) -> Instance:
        server = SecAggServer(
            self.cfg.params(self.max_weight), list(sampled), shapes,
            rng=graph_rng(self.scenario, rnd),
        )  # fmt: skip
        drop_rng = stream(self.scenario.seed, Stream.SECAGG_DROPOUT, rnd)
        return Instance(rnd, server, dict(sampled), drop_rng)

    def _take_pending(
        self, rnd: int, sampled: dict[int, int], shapes: list[tuple]
    ) -> Instance | None:
        """The instance the previous round prepared for this one, if it fits."""
        pending, self.pending = self.pending, None
        if pending is None:
            return None
        fits = (
            pending.rnd == rnd
            and pending.sampled == sampled
            and pending.server.vector_shapes == [tuple(int(d) for d in s) for s in shapes]
            and pending.server.next_stage == Stage.COLLECT_MASKED_VECTORS
        )
        if not fits:
            log.info("round %d: clients differ from the ones prepared; running all stages", rnd)
            return None
        return pending

    def _upcoming(self, rnd: int, shapes: list[tuple]) -> Instance | None:
        """The next round's instance, to prepare alongside this one (pipelining)."""
        if not self.cfg.pipeline or self.nodes is None or rnd >= self.scenario.train.rounds:
            return None
        chosen = round_clients(self.scenario, rnd + 1)
        if any(pid not in self.nodes for pid in chosen):
            return None
        return self._instance(rnd + 1, {self.nodes[pid]: pid for pid in chosen}, shapes)

    # ------------------------------------------------------------------ exchanges

    def _exchange(
        self,
        grid: Grid,
        batch: list[Instance],
        training: Mapping[int, RecordDict],
    ) -> None:
        """One message exchange carrying the next stage of each instance in ``batch``.

        A node in several instances gets one message holding a part for each;
        ``training`` (node -> the strategy's instructions) rides with a
        collect_masked_vectors part.
        """
        stages = {inst.rnd: inst.server.next_stage for inst in batch}
        outgoing = {inst.rnd: inst.server.messages() for inst in batch}
        contents: dict[int, RecordDict] = {}
        for inst in batch:
            for node, stage_msg in outgoing[inst.rnd].items():
                content = contents.setdefault(node, RecordDict())
                if stages[inst.rnd] == Stage.COLLECT_MASKED_VECTORS:  # train, then mask
                    content["arrays"] = training[node].array_records["arrays"]
                    content["config"] = training[node].config_records["config"]
                add_part(content, inst.rnd, stage_msg)
        sent = [
            Message(content, dst_node_id=node, message_type=MESSAGE_TYPE)
            for node, content in contents.items()
        ]
        began = time.monotonic()
        replies = send_and_receive(grid, sent, self.cfg.timeout)
        seconds = round(time.monotonic() - began, 3)
        node_of = {m.metadata.message_id: m.metadata.dst_node_id for m in sent}
        strays = sum(replying_node(m, node_of) not in contents for m in replies)
        if strays:  # from a node nobody asked: counted once, by the first instance
            batch[0].dropped["unexpected_sender"] += strays
        trains = Stage.COLLECT_MASKED_VECTORS in stages.values()
        parts = {id(m): _read(m) for m in replies}  # each reply decoded once
        for inst in batch:
            stage = stages[inst.rnd]
            assert stage is not None
            inst.stage_seconds[str(stage)] = seconds
            mine = [m for m in sent if m.metadata.dst_node_id in outgoing[inst.rnd]]
            coupled = trains and stage != Stage.COLLECT_MASKED_VECTORS  # rode on a training
            sound = _collect(replies, parts, mine, inst, stage, self._reads(), coupled)
            if stage == Stage.COLLECT_MASKED_VECTORS:
                inst.trained = {m.metadata.src_node_id: m for m in sound}
            decoded = {m.metadata.src_node_id: parts[id(m)][inst.rnd] for m in sound}  # type: ignore[index]
            decoded = _simulate_dropout(decoded, len(mine), inst, stage, self.scenario)
            inst.server.receive(decoded)

    def _reads(self) -> tuple[str, ...]:
        """Metrics the strategy reads of a training reply (e.g. FedNova's ``fednova-a``)."""
        return reply_contract(self.scenario.strategy.name).metrics

    # -------------------------------------------------------------------- outcome

    def _outcome(
        self,
        inst: Instance,
        global_arrays: ArrayRecord,
        sampled: dict[int, int],
        started: float,
        exchanges: int,
        prepared: bool,
    ) -> RoundOutcome:
        server = inst.server
        outcome = RoundOutcome(dropped=inst.dropped, refused=inst.refused)
        outcome.trained = list(inst.trained.values())
        result = server.failure if server.failure is not None else server.aggregate()
        figures: dict[str, Any] = {
            "sampled": len(server.node_ids),
            "survivors": {s: len(v) for s, v in server.survivors.items()},
            "dropouts": dict(server.dropouts),
            "clipped": server.clipped,
            "failure": None,
            "stage_seconds": dict(inst.stage_seconds),
            "exchanges": exchanges,
            "prepared": prepared,
        }
        if isinstance(result, SecAggFailure):
            figures["failure"] = f"{result.stage}: {result.reason}"
        elif isinstance(mean := result.weighted_mean(), SecAggFailure):
            figures["failure"] = f"{mean.stage}: {mean.reason}"
        else:
            # in partition order, as a plain round's replies
            contributors = sorted(server.survivors[Stage.COLLECT_MASKED_VECTORS], key=sampled.get)
            outcome.contributors = [inst.trained[node] for node in contributors]
            figures["clipped"] = result.clipped
            aggregate = apply_delta(global_arrays, np.concatenate([m.ravel() for m in mean]))
            outcome.replies = [
                with_records(m, drop=part_keys(m.content), arrays=aggregate)
                for m in outcome.contributors
            ]
        if figures["failure"]:
            log.warning("round %d: SecAgg+ produced no aggregate: %s", inst.rnd, figures["failure"])
        figures["contributors"] = len(outcome.contributors)
        figures["seconds"] = round(time.monotonic() - started, 3)
        outcome.figures = {"secure_aggregation": figures}
        return outcome


def secagg_round(
    grid: Grid,
    scenario: Scenario,
    rnd: int,
    instructions: list[Message],
    global_arrays: ArrayRecord,
    max_weight: float,
    sampled: dict[int, int] | None = None,
) -> RoundOutcome:
    """Run one round's four SecAgg+ stages on their own (no next round prepared).

    Parameters
    ----------
    grid, scenario, rnd, instructions, global_arrays, sampled
        As :meth:`SecAggTransport.__call__`.
    max_weight : float
        Largest client weight.

    Returns
    -------
    RoundOutcome
        As :meth:`SecAggTransport.__call__`.
    """
    return SecAggTransport(scenario, max_weight)(grid, rnd, instructions, global_arrays, sampled)


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


def _read(msg: Message) -> dict[int, dict[str, Any]] | None:
    """The stage parts a reply carries, or ``None`` when it is an error or does not decode."""
    if msg.has_error():
        return None
    try:
        return read_parts(msg.content)
    except (KeyError, ValueError, TypeError):
        return None


def _part_problem(
    msg: Message,
    parts: dict[int, dict[str, Any]] | None,
    rnd: int,
    stage: Stage,
    metrics: tuple[str, ...] = (),
) -> str | None:
    """Why a reply is unusable for instance ``rnd``: its part (``parts``, as :func:`_read`
    decoded them) is missing or does not decode, or (collect_masked_vectors) its training
    metrics do not (or echo another round than ``rnd``, or lack a metric the strategy reads:
    ``metrics``, e.g. FedNova's ``fednova-a``)."""
    if parts is None or rnd not in parts:
        return "malformed"
    if stage != Stage.COLLECT_MASKED_VECTORS:
        return None
    problem = metrics_problem(msg, rnd=rnd)
    if problem is None and metrics:  # the client drops out before its mask is removed
        problem = contract_problem(msg, ArrayRecord(), ReplyContract(metrics=metrics))
    return problem


def _collect(
    replies: list[Message],
    parts: dict[int, dict[int, dict[str, Any]] | None],
    sent: list[Message],
    inst: Instance,
    stage: Stage,
    metrics: tuple[str, ...] = (),
    coupled: bool = False,
) -> list[Message]:
    """The sound replies for ``inst`` among ``replies`` to ``sent`` (its nodes' messages),
    counting the others in ``inst`` (training replies must echo its round and hold the
    strategy's ``metrics``; ``parts``: each reply's decoded parts, by ``id``).
    ``coupled``: ``inst``'s stage rode on another round's training; a client that declined
    that training is counted as ``declined_previous_round`` here, not as declining this
    round."""
    asked = {m.metadata.dst_node_id: inst.sampled[m.metadata.dst_node_id] for m in sent}
    node_of = {m.metadata.message_id: m.metadata.dst_node_id for m in sent}
    own = [m for m in replies if replying_node(m, node_of) in asked]
    sound, dropped, refused = screen(
        own, asked, sent, lambda m: _part_problem(m, parts.get(id(m)), inst.rnd, stage, metrics)
    )
    if coupled:
        for reason in [r for r in dropped if r in REFUSALS or r == "refused"]:
            dropped["declined_previous_round"] += dropped.pop(reason)
        refused = set()
    inst.dropped.update(dropped)
    inst.refused |= refused
    return sound


def _simulate_dropout(
    replies: dict[int, dict[str, Any]],
    sent: int,
    inst: Instance,
    stage: Stage,
    scenario: Scenario,
) -> dict[int, dict[str, Any]]:
    """For tests: discard a seeded share of one stage's replies (``simulate_dropout``)."""
    simulated = scenario.privacy.secure_aggregation.simulate_dropout  # type: ignore[union-attr]
    if simulated is None or simulated.stage != str(stage) or not replies:
        return replies
    count = int(round(simulated.fraction * sent))
    order = sorted(replies)  # node ids are 64-bit unsigned: choose by index
    lost = inst.drop_rng.choice(len(order), size=min(count, len(order)), replace=False)
    for index in lost:
        del replies[order[int(index)]]
    if count:
        inst.dropped["simulated_dropout"] += len(lost)
    return replies
