"""Messages are copied with every record; only the named ones change."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedrobust.federation.records import for_strategy, replace_records, to_node, with_records


def content() -> RecordDict:
    return RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.zeros(2, np.float32))}),
            "metrics": MetricRecord({"num-examples": 3}),
            "feature": ConfigRecord({"x": 1}),
        }
    )


def test_replace_keeps_every_record_and_replaces_only_the_named() -> None:
    new = ConfigRecord({"sigma": 1.0})
    out = replace_records(content(), config=new)
    assert list(out.keys()) == ["arrays", "metrics", "feature", "config"]
    assert out["config"] is new
    dropped = replace_records(content(), drop=("feature",))
    assert list(dropped.keys()) == ["arrays", "metrics"]


@pytest.mark.usefixtures("server_identity")
def test_copies_keep_a_features_records_and_the_strategy_sees_arrays_and_metrics() -> None:
    msg = Message(content=content(), dst_node_id=7, message_type="train")
    sent = to_node(msg, config=ConfigRecord({"sigma": 2.0}))
    assert sent.metadata.dst_node_id == 7 and "feature" in sent.content
    copied = with_records(sent, arrays=ArrayRecord({"w": Array(np.ones(2, np.float32))}))
    assert copied.metadata is sent.metadata and "feature" in copied.content
    assert msg.content["arrays"]["w"].numpy().sum() == 0  # the original is untouched
    assert list(for_strategy(copied).content.keys()) == ["arrays", "metrics"]
