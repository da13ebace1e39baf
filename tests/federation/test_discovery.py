"""Who holds which partition: a client whose SuperNode came back under a new node id gets
its partition back; in Flower's simulation engine discovery asks a few nodes, not all."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from fedrobust.federation.discovery import SPOT_CHECKS, discover_clients, rejoin_clients
from fedrobust.models.registry import InputSpec
from fedrobust.scenario import parse_scenario
from tests.grid import simulated_grid

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


MANY = parse_scenario(
    {
        "name": "many",
        "data": {
            "dataset": "synthetic:1x8x8:10:20000",
            "partition": {"kind": "iid", "num_clients": 1000},
        },
        "model": {"name": "mlp"},
        "train": {"fraction_train": 0.01},
    }
)


@pytest.mark.usefixtures("server_identity")
def test_a_simulation_of_1000_clients_asks_only_a_few_nodes_who_they_are() -> None:
    grid = simulated_grid(1000)
    sizes: dict[int, int] = {}
    nodes = discover_clients(grid, MANY, SPEC, sizes)
    truth = {int(c.node_config["partition-id"]): node for node, c in grid.contexts.items()}
    assert nodes == truth
    assert len(grid.asked) == SPOT_CHECKS  # before: all 1,000
    assert len(sizes) == 1000 and all(s > 0 for s in sizes.values())


@pytest.mark.usefixtures("server_identity")
def test_a_simulation_whose_nodes_disagree_with_the_registration_order_asks_everyone() -> None:
    few = MANY.model_copy(deep=True)
    few.data.partition.num_clients = 20
    grid = simulated_grid(20, shuffled=True)
    nodes = discover_clients(grid, few, SPEC, {})
    truth = {int(c.node_config["partition-id"]): node for node, c in grid.contexts.items()}
    assert nodes == truth
    assert len(grid.asked) == SPOT_CHECKS + 20  # the spot check failed: everyone was asked


@pytest.mark.usefixtures("server_identity")
def test_a_simulation_asks_nobody_to_rejoin() -> None:
    grid = simulated_grid(3)
    nodes = {0: 1, 1: 2, 2: 3}  # none of them online: a deployment would ask
    assert rejoin_clients(grid, SC, SPEC, nodes) == {}
    assert grid.asked == []
