"""Screen client replies before any strategy sees them: one function, every transport.

Flower aborts a whole run on one inconsistent reply and checks neither shapes nor
finiteness. Here each reply is checked (the plain round's against the global model,
a SecAgg+ stage's by its stage's decoder); a bad one is dropped with a counted reason
and the round goes on with the rest. The reasons are one vocabulary for both
transports: ``offline``, ``client_error``, ``unexpected_sender``, a refusal's reason,
``duplicate_reply``, ``no_reply`` and the payload checks' own (``missing_records``,
``unexpected_records``, ``wrong_keys``, ``wrong_stype``, ``wrong_shape``,
``wrong_dtype``, ``oversized``, ``malformed``, ``wrong_payload``, ``non_finite``,
``bad_metrics``, ``bad_num_examples``, ``stale_reply``). A strategy that reads more of a
reply than ``arrays`` and the weights (SCAFFOLD's control-variate delta, FedNova's
``a_i``) declares it in a :class:`ReplyContract`, checked here with the same reasons.
Nothing a single client sends raises here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.common.constant import ErrorCode

# Reasons a client may give for declining a round (ConfigRecord "status", key "refused").
REFUSALS = ("budget_exhausted", "policy")
# The records every training reply holds; a scenario's client hooks may declare more.
STRATEGY_KEYS = frozenset({"arrays", "metrics"})
# Bytes a serialised array may carry beyond its values (numpy's .npy header).
MAX_HEADER_SLACK = 512


@dataclass(frozen=True)
class ReplyContract:
    """What a strategy reads of every training reply besides ``arrays`` and the weights.

    Parameters
    ----------
    records : tuple[str, ...]
        ArrayRecords shaped like the global model's floating-point arrays (same keys in
        the same order, shapes and dtypes; finite), e.g. SCAFFOLD's ``scaffold-dc``.
    metrics : tuple[str, ...]
        Keys of ``metrics`` that must hold a finite, strictly positive number (FedNova's
        ``fednova-a``).
    """

    records: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()


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


def refusal_reason(msg: Message) -> str | None:
    """The reason a reply declines the round, or ``None`` when it does not."""
    status = msg.content.config_records.get("status")
    if status is None or "refused" not in status:
        return None
    reason = str(status["refused"])
    return reason if reason in REFUSALS else "refused"


def metrics_problem(msg: Message, cap: int | None = None, rnd: int | None = None) -> str | None:
    """Why a training reply's metrics are unusable, or ``None``.

    ``metrics`` must be a MetricRecord of scalar numbers (no lists) whose
    ``num-examples`` is a positive integer, at most ``cap`` (the training examples the
    client declared at discovery) when given, and whose ``round`` echoes ``rnd`` when
    given (a reply replayed from an earlier round is ``stale_reply``).
    """
    metrics = msg.content.metric_records.get("metrics")
    if not isinstance(metrics, MetricRecord):
        return "missing_records"
    for value in metrics.values():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "bad_metrics"
    num_examples = metrics.get("num-examples")
    if not isinstance(num_examples, int) or num_examples <= 0:
        return "bad_num_examples"
    if cap is not None and num_examples > cap:
        return "bad_num_examples"
    if rnd is not None and metrics.get("round") != rnd:
        return "stale_reply"
    return None


def array_problem(array: object, want: Array) -> str | None:
    """Why one array of a reply does not match the global model's ``want``, or ``None``.

    The declared shape and dtype are checked, then the payload's size before it is
    deserialised, then the deserialised array itself (a declared shape can lie).
    """
    if not isinstance(array, Array) or array.stype != want.stype:
        return "wrong_stype"
    if tuple(array.shape) != tuple(want.shape):
        return "wrong_shape"
    if array.dtype != want.dtype:
        return "wrong_dtype"
    if len(array.data) > len(want.data) + MAX_HEADER_SLACK:
        return "oversized"
    try:
        values = array.numpy()
    except Exception:  # noqa: BLE001 - any payload numpy cannot read is malformed
        return "malformed"
    if values.shape != tuple(want.shape) or values.dtype != np.dtype(want.dtype):
        return "wrong_payload"
    if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
        return "non_finite"
    return None


def model_shaped_problem(record: object, expected: ArrayRecord) -> str | None:
    """Why ``record`` is not an ArrayRecord over ``expected``'s floating-point arrays
    (same keys in the same order, each passing :func:`array_problem`), or ``None``."""
    if not isinstance(record, ArrayRecord):
        return "missing_records"
    keys = [k for k, a in expected.items() if np.issubdtype(np.dtype(a.dtype), np.floating)]
    if list(record.keys()) != keys:
        return "wrong_keys"
    for key, array in record.items():
        if (problem := array_problem(array, expected[key])) is not None:
            return problem
    return None


def contract_problem(msg: Message, expected: ArrayRecord, contract: ReplyContract) -> str | None:
    """Why a reply lacks what its strategy reads (``contract``), or ``None``.

    A missing record is ``missing_records``; a malformed one gets :func:`array_problem`'s
    reason; a missing, non-numeric, non-finite or non-positive metric is ``bad_metrics``.
    """
    for name in contract.records:
        if (problem := model_shaped_problem(msg.content.get(name), expected)) is not None:
            return problem
    metrics = msg.content.metric_records.get("metrics")
    for name in contract.metrics:
        value = None if metrics is None else metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "bad_metrics"
        if not np.isfinite(value) or value <= 0:
            return "bad_metrics"
    return None


def weights_problem(
    msg: Message,
    expected: ArrayRecord,
    cap: int | None = None,
    records: frozenset[str] = STRATEGY_KEYS,
    rnd: int | None = None,
    contract: ReplyContract = ReplyContract(),
) -> str | None:
    """Why a training reply cannot be aggregated with ``expected``'s weights, or ``None``.

    The reply holds exactly ``records`` (``arrays``, ``metrics`` and the records the
    scenario's client hooks declare; at most those, at least the first two), and what
    the strategy reads (``contract``).
    """
    content = msg.content
    names = set(content.keys())
    if not STRATEGY_KEYS <= names or not isinstance(content.get("arrays"), ArrayRecord):
        return "missing_records"
    if names - records:
        return "unexpected_records"
    arrays = content.array_records["arrays"]
    if list(arrays.keys()) != list(expected.keys()):
        return "wrong_keys"
    for key, array in arrays.items():
        if (problem := array_problem(array, expected[key])) is not None:
            return problem
    if (problem := metrics_problem(msg, cap, rnd)) is not None:
        return problem
    return contract_problem(msg, expected, contract)


def screen(
    replies: Iterable[Message],
    sampled: Mapping[int, int],
    sent: Iterable[Message],
    payload: Callable[[Message], str | None],
) -> tuple[list[Message], Counter[str], set[int]]:
    """Split replies into sound ones and the reasons for dropping the others.

    Parameters
    ----------
    replies : Iterable[Message]
        What came back.
    sampled : Mapping[int, int]
        Node id -> partition id of the nodes asked.
    sent : Iterable[Message]
        The messages sent: an error the SuperLink sends on behalf of an offline node
        counts for that node instead of as a missing reply.
    payload : callable
        The transport's content check: a reason, or ``None`` for a sound reply.

    Returns
    -------
    The sound replies, one per node, ordered by partition id (so aggregation sums in
    the same order every run); the drop reasons (sampled nodes that sent nothing count
    as ``no_reply``); the nodes that declined the round (counted under their reason too).
    """
    accepted: dict[int, Message] = {}
    dropped: Counter[str] = Counter()
    refused: set[int] = set()
    node_of = {m.metadata.message_id: m.metadata.dst_node_id for m in sent}
    answered: set[int] = set()
    for msg in replies:
        answered.add(replying_node(msg, node_of))
        if msg.has_error():
            problem: str | None = error_reason(msg)
        elif msg.metadata.src_node_id not in sampled:
            problem = "unexpected_sender"
        elif (problem := refusal_reason(msg)) is not None:
            refused.add(msg.metadata.src_node_id)
        elif msg.metadata.src_node_id in accepted:
            problem = "duplicate_reply"
        else:
            try:
                problem = payload(msg)
            except Exception:  # noqa: BLE001 - a hostile reply never stops the round
                problem = "malformed"
        if problem is None:
            accepted[msg.metadata.src_node_id] = msg
        else:
            dropped[problem] += 1
    missing = len(set(sampled) - answered)
    if missing:
        dropped["no_reply"] += missing
    ordered = [accepted[node] for node in sorted(accepted, key=sampled.__getitem__)]
    return ordered, dropped, refused


def screen_replies(
    replies: Iterable[Message],
    expected: ArrayRecord,
    sampled: Mapping[int, int],
    sent: Iterable[Message] = (),
    *,
    caps: Mapping[int, int] | None = None,
    records: frozenset[str] = STRATEGY_KEYS,
    rnd: int | None = None,
    contract: ReplyContract = ReplyContract(),
) -> tuple[list[Message], Counter[str], set[int]]:
    """:func:`screen` for plain training replies, checked against the global ``expected``.

    ``caps`` (partition id -> training examples declared at discovery) bounds each
    client's ``num-examples``; ``records`` names the records a reply may hold; ``rnd``
    is the round each reply must echo; ``contract`` is what the strategy reads.
    """
    caps = caps or {}

    def payload(msg: Message) -> str | None:
        cap = caps.get(sampled[msg.metadata.src_node_id])
        return weights_problem(msg, expected, cap, records, rnd, contract)

    return screen(replies, sampled, sent, payload)
