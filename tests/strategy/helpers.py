"""Shared pieces of the client-drift strategy tests: hand-made replies, a grid that only
lists nodes, and in-process runs (straight and resumed) of a small digits federation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fedrobust.apps.server.loop import run_federation
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)

from fedrobust.scenario import Scenario, parse_scenario
from tests.grid import NUM_CLIENTS, InProcessGrid


def record(**arrays: list[float] | np.ndarray) -> ArrayRecord:
    """An ArrayRecord of float32 arrays."""
    return ArrayRecord({k: Array(np.asarray(v, np.float32)) for k, v in arrays.items()})


def values(rec: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord's arrays as numpy, by key."""
    return {k: a.numpy() for k, a in rec.items()}


def reply(
    node: int,
    arrays: ArrayRecord,
    num_examples: int = 10,
    metrics: dict[str, Any] | None = None,
    **records: ArrayRecord,
) -> Message:
    """A training reply from ``node`` with ``arrays``, weights and extra records."""
    md = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="m",
        group_id="1", created_at=time.time(), ttl=60, message_type=MessageType.TRAIN,
    )  # fmt: skip
    content = RecordDict(
        {
            "arrays": arrays,
            "metrics": MetricRecord({"num-examples": num_examples, **(metrics or {})}),
            **records,
        }
    )
    return Message(metadata=md, content=content)


class NodeGrid:
    """What a strategy's ``configure_train`` reads of a grid: the node ids, in order."""

    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)


def config() -> ConfigRecord:
    """A training config record (the recipe is not read by the server strategies)."""
    return ConfigRecord({"lr": 0.1})


def scenario(name: str, rounds: int, **sections: Any) -> Scenario:
    """A small digits federation (pathological split, 3 of 5 clients a round) with the
    strategy ``name``; ``sections`` override or add sections."""
    doc: dict[str, Any] = {
        "name": f"drift_{name}",
        "seed": 3,
        "data": {"dataset": "digits",
                 "partition": {"kind": "pathological", "num_clients": NUM_CLIENTS,
                               "classes_per_client": 3}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"rounds": rounds, "batch_size": 64, "fraction_train": 0.6,
                  "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.5}},
        "strategy": {"name": name},
    }  # fmt: skip
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_scenario(doc)


def run(sc: Scenario, out: Path, resume: bool = False) -> dict[str, Any]:
    """Run ``sc`` on a fresh in-process grid (fresh client contexts); metrics.json."""
    run_federation(InProcessGrid(), sc, out, resume=resume)  # type: ignore[arg-type]
    return json.loads((out / "metrics.json").read_text())


def final_model(out: Path) -> dict[str, torch.Tensor]:
    """The run's kept model."""
    return torch.load(out / "model.pt", weights_only=True)


def assert_resume_is_exact(name: str, tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """Two rounds straight and one round + a resume to round 2 (a new grid: new client
    contexts, as a new simulation) give the same rounds and the same final weights."""
    straight = run(scenario(name, 2, **sections), tmp_path / "straight")
    run(scenario(name, 1, **sections), tmp_path / "resumed")
    resumed = run(scenario(name, 2, **sections), tmp_path / "resumed", resume=True)
    for key in ("accuracy", "loss", "aggregated"):
        assert [r[key] for r in resumed["rounds"]] == [r[key] for r in straight["rounds"]]
    a, b = final_model(tmp_path / "straight"), final_model(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return straight
