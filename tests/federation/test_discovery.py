"""A client whose SuperNode came back under a new node id gets its partition back."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from fedrobust.federation.discovery import rejoin_clients
from fedrobust.models.registry import InputSpec
from fedrobust.scenario import parse_scenario

SC = parse_scenario(
    {"name": "r", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}}}
)
SPEC = InputSpec(shape=(1, 8, 8), num_classes=10)


class Grid:
    """Online nodes and the partition each one claims when asked."""

    def __init__(self, claims: dict[int, int]) -> None:
        self.claims = claims
        self.asked: list[int] = []

    def get_node_ids(self) -> list[int]:
        return list(self.claims)

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            self.asked.append(node)
            info = ConfigRecord({"partition-id": self.claims[node]})
            reply = Message(content=RecordDict({"info": info}), reply_to=msg)
            reply.metadata.__dict__["_src_node_id"] = node
            replies.append(reply)
        return replies


@pytest.mark.usefixtures("server_identity")
def test_a_returning_node_with_a_new_id_takes_its_partition_back() -> None:
    nodes = {0: 10, 1: 11, 2: 12}
    grid = Grid({10: 0, 11: 1, 42: 2})  # node 12 is gone; 42 is new and says it is client 2
    assert rejoin_clients(grid, SC, SPEC, nodes) == {2: 42}  # type: ignore[arg-type]
    assert nodes == {0: 10, 1: 11, 2: 42}
    assert grid.asked == [42]  # only the newcomer was asked


@pytest.mark.usefixtures("server_identity")
def test_nothing_is_asked_while_every_client_is_online_or_nobody_new_came() -> None:
    nodes = {0: 10, 1: 11, 2: 12}
    everyone = Grid({10: 0, 11: 1, 12: 2, 99: 0})
    assert rejoin_clients(everyone, SC, SPEC, nodes) == {}  # type: ignore[arg-type]
    missing = Grid({10: 0, 11: 1})
    assert rejoin_clients(missing, SC, SPEC, nodes) == {}  # type: ignore[arg-type]
    assert everyone.asked == [] and missing.asked == []


@pytest.mark.usefixtures("server_identity")
def test_a_newcomer_cannot_take_the_partition_of_a_client_still_online() -> None:
    nodes = {0: 10, 1: 11, 2: 12}
    grid = Grid({10: 0, 11: 1, 77: 0})  # 12 is gone; 77 claims client 0, who is online
    assert rejoin_clients(grid, SC, SPEC, nodes) == {}  # type: ignore[arg-type]
    assert nodes == {0: 10, 1: 11, 2: 12}
