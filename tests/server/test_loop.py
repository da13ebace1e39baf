"""The round loop wires every feature through its hooks: a new feature is a client hook,
a server hook and a registry line, and its records and state travel through DP, the
colluding attacker, a defence, checkpoints and resumes untouched."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from fedrobust.apps.server.loop import run_federation
from flwr.app import ArrayRecord, ConfigRecord, Message
from torch import nn

from fedrobust.checkpoint import load_checkpoint
from fedrobust.federation import registry
from fedrobust.federation.client_hooks import ClientHook, ClientJob
from fedrobust.federation.records import Record, to_node
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.scenario import Scenario, parse_scenario
from tests.grid import NUM_CLIENTS, InProcessGrid


class CountingClient(ClientHook):
    """A toy feature: each client counts its rounds in its state and reports the count,
    with the server's figure it received, in a record of its own."""

    state_keys = ("toy-count",)
    reply_records = ("toy",)

    def __init__(self) -> None:
        self.count = 0

    @classmethod
    def create(cls, scenario: Scenario) -> CountingClient:
        return cls()

    def load_state_dict(self, state: Mapping[str, Record]) -> None:
        self.count = int(state["toy-count"]["n"]) if "toy-count" in state else 0  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Record]:
        return {"toy-count": ConfigRecord({"n": self.count})}

    def reply(
        self, job: ClientJob, records: dict[str, Record], global_arrays: ArrayRecord
    ) -> dict[str, Record]:
        self.count += 1
        seen = job.content.config_records["toy-server"]["total"]  # the server's record arrived
        return {**records, "toy": ConfigRecord({"n": self.count, "seen": seen})}


class CountingServer(ServerHook):
    """The toy feature's server side: sends its running total, sums the clients' counts."""

    name = "toy"

    def __init__(self) -> None:
        self.total = 0
        self.transformed: list[set[str]] = []

    @classmethod
    def create(cls, setup: ServerSetup) -> CountingServer:
        return cls()

    def configure(
        self, rnd: int, messages: list[Message], sampled: dict[int, int]
    ) -> list[Message]:
        return [to_node(m, **{"toy-server": ConfigRecord({"total": self.total})}) for m in messages]

    def transform(
        self, rnd: int, replies: list[Message], arrays: ArrayRecord, sampled: dict[int, int],
        model: nn.Module,
    ) -> tuple[list[Message], dict[str, Any]]:  # fmt: skip
        self.transformed.append({key for m in replies for key in m.content.keys()})
        return replies, {}

    def observe(self, view: RoundView, figures: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        counts = [int(m.content.config_records["toy"]["n"]) for m in view.outcome.replies]  # type: ignore[arg-type]
        self.total += sum(counts)
        return {"toy_total": self.total}

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = int(state["total"])


def scenario(rounds: int) -> Scenario:
    return parse_scenario(
        {
            "name": "hooks",
            "seed": 1,
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": NUM_CLIENTS}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"rounds": rounds, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.1},
                      "early_stopping": {"metric": "loss", "patience": 5}},
            "privacy": {"dp": {"mode": "sample", "noise_multiplier": 1.0, "delta": 1e-4}},
            "attack": {"kind": "alie", "count": 1},
            "defense": {"name": "median"},
        }
    )  # fmt: skip


@pytest.fixture
def toy_feature(monkeypatch: pytest.MonkeyPatch, server_identity: None) -> list[CountingServer]:
    """Register the toy feature: one line in each registry, nothing else."""
    made: list[CountingServer] = []

    class Tracked(CountingServer):
        @classmethod
        def create(cls, setup: ServerSetup) -> CountingServer:
            made.append(hook := cls())
            return hook

    monkeypatch.setattr(registry, "CLIENT_HOOKS", (*registry.CLIENT_HOOKS, CountingClient))
    monkeypatch.setattr(registry, "SERVER_HOOKS", (*registry.SERVER_HOOKS, Tracked))
    return made


def test_a_new_feature_joins_through_hooks_with_its_records_and_state(
    tmp_path: Path, toy_feature: list[CountingServer]
) -> None:
    grid = InProcessGrid()
    run_federation(grid, scenario(rounds=1), tmp_path)  # type: ignore[arg-type]
    ckpt = load_checkpoint(tmp_path)
    # one checkpoint entry per hook with state
    assert set(ckpt.extra) == {"early_stopping", "privacy", "defense", "toy"}
    assert ckpt.extra["toy"] == {"total": NUM_CLIENTS}
    # resumed in a new loop: the server hook's state comes back from the checkpoint
    run_federation(grid, scenario(rounds=2), tmp_path, resume=True)  # type: ignore[arg-type]
    rounds = json.loads((tmp_path / "metrics.json").read_text())["rounds"]
    assert [r["toy_total"] for r in rounds] == [NUM_CLIENTS, NUM_CLIENTS + 2 * NUM_CLIENTS]
    # the clients' records survived DP's per-client messages, the colluding attacker
    # and the median defence, and reached the hooks after them
    resumed = toy_feature[-1]
    assert all("toy" in keys for keys in resumed.transformed)
    # each client kept its count in its own state across both rounds
    for context in grid.contexts.values():
        assert context.state.config_records["toy-count"]["n"] == 2
    assert torch.load(tmp_path / "model.pt")  # the run finished and kept a model


@pytest.mark.usefixtures("server_identity")
def test_a_simulation_of_200_clients_records_only_the_sampled_clients(tmp_path: Path) -> None:
    from fedrobust.sampling import round_clients
    from tests.grid import simulated_grid

    many = parse_scenario(
        {
            "name": "many",
            "data": {
                "dataset": "synthetic:1x8x8:10:4000",
                "partition": {"kind": "iid", "num_clients": 200},
            },
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"rounds": 2, "fraction_train": 0.001, "min_train_clients": 4},
        }
    )
    grid = simulated_grid(200)
    run_federation(grid, many, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    for r in doc["rounds"]:  # per-client records for the round's clients only
        assert {c["client"] for c in r["clients"]} == set(round_clients(many, r["round"]))
    assert "clients" not in doc["data"]  # 200 records before; now a summary of fixed size
    assert doc["data"]["clients_summary"]["count"] == 200
    assert len(grid.asked) < 20  # discovery asked 8 nodes, two rounds trained 4 each
    assert "over 200 clients" in (tmp_path / "report.html").read_text()
