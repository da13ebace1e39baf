"""Screen client replies before any strategy sees them.

Flower aborts a whole run on one inconsistent reply and checks neither shapes nor
finiteness. Here each reply is checked against the global model; a bad one is
dropped with a counted reason and the round goes on with the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.common.constant import ErrorCode

# Reasons a client may give for declining a round (ConfigRecord "status", key "refused").
REFUSALS = ("budget_exhausted",)


def error_reason(msg: Message) -> str:
    """Why an error reply carries no result: ``offline`` when the SuperLink answers for a
    node that went away (deployments), else ``client_error``."""
    return "offline" if msg.error.code == ErrorCode.NODE_UNAVAILABLE else "client_error"


def replying_node(msg: Message, sent: Mapping[str, int]) -> int:
    """The node a reply speaks for.

    An error the SuperLink sends for an offline node comes from the SuperLink itself;
    ``sent`` (message id -> destination node of the messages sent) names the node.
    """
    if msg.has_error():
        return sent.get(msg.metadata.reply_to_message_id, msg.metadata.src_node_id)
    return msg.metadata.src_node_id


def reply_problem(msg: Message, expected: ArrayRecord, sampled: Mapping[int, int]) -> str | None:
    """Why ``msg`` cannot be aggregated, or ``None`` when it is sound.

    Parameters
    ----------
    msg : Message
        A training reply.
    expected : ArrayRecord
        The global model sent this round: keys, shapes and dtypes to match.
    sampled : Mapping[int, int]
        Node id -> partition id of the nodes asked to train this round.
    """
    if msg.has_error():
        return error_reason(msg)
    if msg.metadata.src_node_id not in sampled:
        return "unexpected_sender"
    content = msg.content
    status = content.config_records.get("status")
    if status is not None and "refused" in status:
        reason = str(status["refused"])
        return reason if reason in REFUSALS else "refused"
    arrays = content.array_records.get("arrays")
    metrics = content.metric_records.get("metrics")
    if not isinstance(arrays, ArrayRecord) or not isinstance(metrics, MetricRecord):
        return "missing_records"
    if list(arrays.keys()) != list(expected.keys()):
        return "wrong_keys"
    for key, array in arrays.items():
        want = expected[key]
        if tuple(array.shape) != tuple(want.shape):
            return "wrong_shape"
        if array.dtype != want.dtype:
            return "wrong_dtype"
        values = array.numpy()
        if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
            return "non_finite"
    num_examples = metrics.get("num-examples")
    if not isinstance(num_examples, int) or isinstance(num_examples, bool) or num_examples <= 0:
        return "bad_num_examples"
    return None


def screen_replies(
    replies: Iterable[Message],
    expected: ArrayRecord,
    sampled: Mapping[int, int],
    sent: Iterable[Message] = (),
) -> tuple[list[Message], Counter[str], set[int]]:
    """Split replies into sound ones and the reasons for dropping the others.

    Sound replies come one per node, ordered by partition id so aggregation sums in
    the same order every run; sampled nodes that sent nothing count as ``no_reply``.
    The third value holds the nodes that declined the round (e.g. their privacy
    budget is spent); they count under their reason too. ``sent`` (the messages of the
    round) lets an error the SuperLink sends on behalf of an offline node count for
    that node instead of as a missing reply.
    """
    accepted: dict[int, Message] = {}
    dropped: Counter[str] = Counter()
    refused: set[int] = set()
    replies_seen = list(replies)
    node_of = {m.metadata.message_id: m.metadata.dst_node_id for m in sent}
    answered: set[int] = set()
    for msg in replies_seen:
        answered.add(replying_node(msg, node_of))
        problem = reply_problem(msg, expected, sampled)
        if problem is None and msg.metadata.src_node_id in accepted:
            problem = "duplicate_reply"
        if problem is None:
            accepted[msg.metadata.src_node_id] = msg
        else:
            dropped[problem] += 1
            if problem in REFUSALS or problem == "refused":
                refused.add(msg.metadata.src_node_id)
    missing = len(set(sampled) - answered)
    if missing:
        dropped["no_reply"] += missing
    ordered = [accepted[node] for node in sorted(accepted, key=sampled.__getitem__)]
    return ordered, dropped, refused
