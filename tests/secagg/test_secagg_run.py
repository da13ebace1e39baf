"""End to end: a SecAgg+ run with DP-SGD clients and dropouts, in a Flower simulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_run import fedrobust

pytestmark = pytest.mark.e2e

SCENARIO = """\
name: secagg_e2e
seed: 4
data:
  dataset: digits
  partition: {kind: iid, num_clients: 5}
model: {name: mlp, hidden: [32]}
train:
  rounds: 2
  batch_size: 32
  optimizer: {name: sgd, lr: 0.3}
privacy:
  dp: {mode: sample, noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-4}
  secure_aggregation:
    num_shares: 5
    reconstruction_threshold: 3
    simulate_dropout: {stage: collect_masked_vectors, fraction: 0.2}
"""


@pytest.mark.slow  # ~70 s of simulation; the protocol's logic runs in-process in the default set
def test_secagg_with_dp_sgd_recovers_a_dropped_client_and_reports_each_stage(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    done = fedrobust("run", str(path), "--out", str(tmp_path / "r"), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "secagg 4/5 clients, 1 dropped" in done.stdout
    doc = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for row in doc["rounds"]:
        secure = row["secure_aggregation"]
        assert secure["failure"] is None
        assert secure["survivors"] == {
            "setup": 5, "share_keys": 5, "collect_masked_vectors": 4, "unmask": 4,
        }  # fmt: skip
        assert secure["dropouts"]["collect_masked_vectors"] == 1
        assert secure["contributors"] == 4 and secure["seconds"] > 0
        assert row["dropped"] == {"simulated_dropout": 1}
        assert row["epsilon"] > 0  # every client that trained spent budget
    # round 2's keys and shares rode on round 1's last two exchanges (pipelining)
    secure = [row["secure_aggregation"] for row in doc["rounds"]]
    assert [(s["exchanges"], s["prepared"]) for s in secure] == [(4, False), (2, True)]
    assert doc["rounds"][-1]["accuracy"] > doc["initial"]["accuracy"]
    assert doc["final"]["epsilon"] > 0
