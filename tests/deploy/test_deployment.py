"""Real deployments on loopback: a SuperLink with TLS and node authentication, SuperNodes.

Marked ``deployment`` (``make test-deployment``, run in CI): each test starts Flower's
own processes, and every one of them is stopped when the test ends.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from fedrobust.apps import FLOWER_APP_DIR as APP_DIR
from fedrobust.deploy.local import LocalFederation, node_config
from fedrobust.deploy.pki import create_node_keys
from fedrobust.launch import RunWatch
from fedrobust.scenario import load_scenario
from tests.test_cli_run import fedrobust

pytestmark = pytest.mark.deployment

SCENARIO = """\
name: edge-test
seed: 3
data:
  dataset: digits
  local_test_fraction: 0.2
  partition: {{kind: iid, num_clients: 3}}
model: {{name: mlp, hidden: [32]}}
personalization: {{method: fedper}}
train:
  rounds: {rounds}
  batch_size: 32
  optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}
simulation: {{timeout: 90}}
"""


def write_scenario(tmp_path, rounds: int):
    path = tmp_path / "edge.yaml"
    path.write_text(SCENARIO.format(rounds=rounds))
    return path


def flower_processes_under(directory) -> list[str]:
    table = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [
        line for line in table.splitlines()
        if str(directory) in line and "flower-" in line and not line.startswith("Z")
    ]  # fmt: skip


def test_deploy_runs_on_authenticated_tls_supernodes_and_matches_the_simulation(
    tmp_path,
) -> None:
    path = write_scenario(tmp_path, rounds=2)
    split = fedrobust("split", str(path), "--out", str(tmp_path / "devices"))
    assert split.returncode == 0, split.stderr
    done = fedrobust(
        "deploy", str(path), "--out", str(tmp_path / "edge"), "--data-dir",
        str(tmp_path / "devices"), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 SuperNodes (TLS, node authentication)" in done.stdout
    doc = json.loads((tmp_path / "edge" / "metrics.json").read_text())
    assert doc["status"] == "completed" and len(doc["rounds"]) == 2
    assert all(r["aggregated"] == 3 and r["dropped"] == {} for r in doc["rounds"])
    logs = tmp_path / "edge" / "deploy" / "logs"
    assert "Uvicorn running on https://127.0.0.1" in (logs / "superlink.log").read_text()
    for i in range(3):
        assert "SuperNode ID" in (logs / f"node-{i}.log").read_text()
    assert flower_processes_under(tmp_path) == []

    sim = fedrobust("run", str(path), "--out", str(tmp_path / "sim"), timeout=600)
    assert sim.returncode == 0, sim.stderr
    simulated = json.loads((tmp_path / "sim" / "metrics.json").read_text())
    for key in ("accuracy", "loss", "train_loss", "val_accuracy"):
        assert [r[key] for r in doc["rounds"]] == [r[key] for r in simulated["rounds"]], key
    # the private heads lived in each SuperNode's state; the final evaluate message
    # reached every device and measured its own test split (written by `split`)
    assert doc["final"]["client_evaluation"] == {"asked": 3, "answered": 3, "dropped": {}}
    for key in ("personalized", "global_local"):
        assert doc["final"][key] == simulated["final"][key], key


def test_an_unregistered_node_and_a_node_without_the_ca_are_refused(tmp_path) -> None:
    with LocalFederation(tmp_path / "fed", num_nodes=1) as federation:
        node_id = federation.register(0)
        federation.start_node(0, node_config(0, 1))
        stranger = create_node_keys(tmp_path / "elsewhere", "stranger")
        unregistered = federation.start_node(
            0, node_config(0, 1), keys=stranger, max_retries=1, log_name="unregistered.log"
        )
        untrusting = federation.start_node(
            0, node_config(0, 1), keys=federation.credentials.nodes[0], trust_ca=False,
            max_retries=1, log_name="no-ca.log",
        )  # fmt: skip
        assert unregistered.wait(timeout=120) != 0
        assert untrusting.wait(timeout=120) != 0
        federation.wait_online(1)
        assert federation.registered() == {node_id: "online"}
        logs = federation.logs
        assert "Failed to activate SuperNode" in (logs / "unregistered.log").read_text()
        assert "CERTIFICATE_VERIFY_FAILED" in (logs / "no-ca.log").read_text()
    assert flower_processes_under(tmp_path) == []


def test_a_killed_supernode_drops_out_of_its_round_and_rejoins_when_restarted(tmp_path) -> None:
    path = write_scenario(tmp_path, rounds=6)
    scenario = load_scenario(path)
    run_dir = tmp_path / "run"
    watch = RunWatch(path, scenario, run_dir)
    events: dict[str, int] = {}

    with LocalFederation(tmp_path / "fed", num_nodes=3) as federation:
        for i in range(3):
            federation.register(i)
            federation.start_node(i, node_config(i, 3))
        federation.wait_online(3)

        def on_poll() -> None:
            doc = watch.document()
            rounds = doc["rounds"] if doc else []
            if "killed_after" not in events and rounds:
                federation.kill_node(2)  # as a device losing power mid-run
                events["killed_after"] = len(rounds)
            elif "restarted_after" not in events and any(r["dropped"] for r in rounds):
                federation.start_node(2, node_config(2, 3), log_name="node-2-again.log")
                events["restarted_after"] = len(rounds)

        federation.run(APP_DIR, watch.run_config, watch.keep_waiting, on_poll)
    doc = watch.result(federation.logs / "flwr.log")
    assert flower_processes_under(tmp_path) == []

    rounds = doc["rounds"]
    assert doc["status"] == "completed" and len(rounds) == 6
    assert "restarted_after" in events, events
    missed = [r for r in rounds if r["dropped"]]
    assert missed, "the killed node's round recorded no dropout"
    for r in missed:  # the round went on with the two others
        assert sum(r["dropped"].values()) == 1 and r["aggregated"] == 2
        assert sorted(c["client"] for c in r["clients"]) == [0, 1]
    back = [r for r in rounds if r["round"] > events["restarted_after"] and r["aggregated"] == 3]
    assert back, f"node 2 never rejoined: {[r['dropped'] for r in rounds]}"
    assert sorted(c["client"] for c in back[-1]["clients"]) == [0, 1, 2]
