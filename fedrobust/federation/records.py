"""Messages are copied, never rebuilt: every record travels on, the named ones replaced.

A feature may add a record to a message (a control variate, a canary flag, ...). Code
that rebuilt a message from a fixed list of keys would drop it silently; these helpers
keep every record and replace only what the caller names.
"""

from __future__ import annotations

import copy

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

Record = ArrayRecord | ConfigRecord | MetricRecord


def replace_records(
    content: RecordDict, drop: tuple[str, ...] = (), **records: Record
) -> RecordDict:
    """A new RecordDict with every record of ``content`` but those named in ``drop``
    (a transport's own), those named in ``records`` replaced (or added)."""
    out = RecordDict()
    for key, record in content.items():
        if key not in drop:
            out[key] = record
    for key, record in records.items():
        out[key] = record
    return out


def with_records(msg: Message, drop: tuple[str, ...] = (), **records: Record) -> Message:
    """A shallow copy of ``msg`` (same metadata) whose content has ``records`` replaced
    and those named in ``drop`` removed."""
    out = copy.copy(msg)
    out.content = replace_records(msg.content, drop, **records)
    return out


def to_node(msg: Message, **records: Record) -> Message:
    """A new message of ``msg``'s type to ``msg``'s destination, ``records`` replaced
    (Flower's strategies address one shared RecordDict to every node; per-client
    settings need a message of their own)."""
    return Message(
        content=replace_records(msg.content, **records),
        message_type=msg.metadata.message_type,
        dst_node_id=msg.metadata.dst_node_id,
    )


STRATEGY_RECORDS = ("arrays", "metrics")
# The metrics Flower's strategies weight by (``weighted_by_key``): example counts, or
# client-level DP's uniform weight.
STRATEGY_METRICS = ("num-examples", "dp-weight")


def for_strategy(msg: Message, strategy: object = None) -> Message:
    """A reply as Flower's strategies take it: ``arrays`` and the weighting metrics alone,
    plus what ``strategy`` declares it reads (its ``reply_records`` and ``reply_metrics``
    class attributes: SCAFFOLD's control-variate delta, FedNova's ``fednova-a``; such a
    strategy removes them before Flower's ``aggregate_train`` sees the reply).

    Flower's ``aggregate_train`` refuses (and aborts the round on) a reply with a second
    ArrayRecord or MetricRecord, or metrics whose keys differ between replies; a
    feature's own records and metrics have reached every server hook before this.
    """
    kept_records = (*STRATEGY_RECORDS, *getattr(strategy, "reply_records", ()))
    kept_metrics = (*STRATEGY_METRICS, *getattr(strategy, "reply_metrics", ()))
    metrics = msg.content.metric_records["metrics"]
    weights = MetricRecord({k: metrics[k] for k in kept_metrics if k in metrics})
    others = tuple(key for key in msg.content.keys() if key not in kept_records)
    return with_records(msg, drop=others, metrics=weights)
