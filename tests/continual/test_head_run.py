"""The head methods in a federation (the server loop against the real ClientApp, in
process): class_aware leaves the rows nobody trained as the initial model has them, and wa
leaves the run's last model with the new classes' rows as long as the old ones'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fedrobust.apps.server.loop import run_federation

from fedrobust.models.build import initial_model
from fedrobust.models.registry import InputSpec
from fedrobust.scenario import parse_scenario
from tests.grid import InProcessGrid


@pytest.mark.usefixtures("server_identity", "single_thread")
def test_class_aware_keeps_untrained_rows_and_wa_aligns_the_last_model(tmp_path: Path) -> None:
    sc = parse_scenario({
        "name": "head_run",
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"rounds": 3, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.1}},
        "continual": {"setting": "class_incremental", "tasks": [[0, 1], [2, 3], [4, 5]],
                      "rounds_per_task": 2, "schedule": "own",
                      "method": "replay+class_aware+wa", "replay": {"buffer_size": 20}},
    })  # fmt: skip
    run_federation(InProcessGrid(4), sc, tmp_path)  # type: ignore[arg-type]
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["status"] == "completed" and [r["task"] for r in doc["rounds"]] == [0, 0, 1]
    assert "wa_gamma" not in doc["rounds"][1]  # task 0: no old classes to align with
    gamma = doc["rounds"][2]["wa_gamma"]  # the run's last round: task 1's rows aligned
    assert gamma > 0 and gamma != pytest.approx(1.0)
    final = torch.load(tmp_path / "model.pt")
    torch.manual_seed(sc.seed)  # as the server builds its first global model
    start, _ = initial_model(sc.model, InputSpec((1, 8, 8), 10), sc.seed)
    head = [k for k in final if k.endswith("weight")][-1]
    bias = head.replace("weight", "bias")
    untrained = [4, 5, 6, 7, 8, 9]  # tasks 2 and beyond: no client reached them in 3 rounds
    torch.testing.assert_close(final[head][untrained], start.state_dict()[head][untrained])
    torch.testing.assert_close(final[bias][untrained], start.state_dict()[bias][untrained])
    norms = final[head].norm(dim=1).numpy()
    assert norms[2:4].mean() == pytest.approx(norms[:2].mean(), rel=1e-4)
    assert np.isfinite(doc["final"]["accuracy"])
