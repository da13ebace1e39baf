"""Limited labels in a whole federation (in-process): clients train on their labelled
share, learn from the rest, and their reply says how much of it passed the threshold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from fedrobust.apps.server.loop import run_federation

from fedrobust.scenario import parse_scenario
from tests.grid import InProcessGrid


def scenario(**train: Any) -> dict[str, Any]:
    return {
        "name": "semisup",
        "seed": 3,
        "data": {
            "dataset": "digits",
            "partition": {"kind": "iid", "num_clients": 2},
            "labeled_fraction": 0.2,
        },
        "model": {"name": "mlp", "hidden": [32]},
        "train": {
            "rounds": 2,
            "local_epochs": 3,
            "batch_size": 16,
            "optimizer": {"name": "sgd", "lr": 0.1, "sam": {"rho": 0.05}},
            **train,
        },
    }


def run(doc: dict[str, Any], out: Path) -> dict[str, Any]:
    run_federation(InProcessGrid(2), parse_scenario(doc), out)
    return json.loads((out / "metrics.json").read_text())


def test_pseudo_labels_with_sam_train_a_federation_on_a_fifth_of_the_labels(
    tmp_path: Path, server_identity: None
) -> None:
    semi = {"method": "pseudo_label", "threshold": 0.5}
    metrics = run(scenario(semi_supervised=semi), tmp_path / "semi")
    assert metrics["status"] == "completed"
    assert 0.5 < metrics["final"]["accuracy"] <= 1.0  # 10 classes: chance is 0.1
    rates = [row["pseudo_label_rate"] for row in metrics["rounds"]]
    assert all(0 < rate <= 1 for rate in rates)  # threshold 0.5: some inputs pass
    assert [c["num_examples"] for c in metrics["rounds"][0]["clients"]] == [130, 129]
    plain = run(scenario(), tmp_path / "plain")
    assert metrics["final"]["accuracy"] != plain["final"]["accuracy"]  # the term did something
    assert np.isfinite(plain["final"]["loss"])
    assert "pseudo_label_rate" not in plain["rounds"][0]
