"""The simulation launcher: a private local Ray instance by default, or an existing Ray
cluster (``simulation.ray_address``) with a runtime environment passed through."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario
from fedrobust.simulation import ray_environment
from tests.test_cli_run import fedrobust

BASE = {
    "name": "tiny",
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"rounds": 1, "local_epochs": 1},
}


def scenario(**simulation: object) -> dict[str, object]:
    return {**BASE, "simulation": simulation}


def test_without_an_address_every_ray_variable_is_removed() -> None:
    env = ray_environment(parse_scenario(scenario()))
    assert env == {"RAY_ADDRESS": None, "RAY_JOB_CONFIG_JSON_ENV_VAR": None,
                   "RAY_OVERRIDE_JOB_RUNTIME_ENV": None}  # fmt: skip


def test_an_address_and_a_runtime_env_reach_ray_through_its_environment() -> None:
    runtime = {"env_vars": {"OMP_NUM_THREADS": "1"}, "pip": ["numpy"]}
    env = ray_environment(parse_scenario(scenario(ray_address="auto", ray_runtime_env=runtime)))
    assert env["RAY_ADDRESS"] == "auto"
    assert json.loads(env["RAY_JOB_CONFIG_JSON_ENV_VAR"] or "") == {"runtime_env": runtime}
    assert env["RAY_OVERRIDE_JOB_RUNTIME_ENV"] == "1"


@pytest.mark.parametrize(
    ("simulation", "field"),
    [
        ({"ray_runtime_env": {"pip": ["x"]}}, "simulation.ray_runtime_env"),
        ({"ray_address": "auto", "num_cpus": 2}, "simulation.num_cpus"),
        ({"ray_address": "a cluster"}, "simulation.ray_address"),
    ],
)
def test_cluster_settings_that_cannot_work_are_refused_naming_the_field(
    simulation: dict[str, object], field: str
) -> None:
    with pytest.raises(FedrobustError) as err:
        parse_scenario(scenario(**simulation))
    assert field in str(err.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ray_head() -> Iterator[tuple[str, Path]]:
    """A one-node Ray cluster (``ray start --head --block``), stopped with its process
    group: its GCS address and its session directory."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths are short
    port = _free_port()
    ray = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
         "--temp-dir", str(temp), "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(temp.glob("session_*/logs/raylet.out")):
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the Ray head did not start in 120 s"
            time.sleep(1)
        yield f"127.0.0.1:{port}", temp / "session_latest"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow  # starts a Ray head (~15 s) and runs one round on it
def test_a_run_trains_on_an_existing_ray_cluster(
    ray_head: tuple[str, Path], tmp_path: Path
) -> None:
    address, session = ray_head
    doc = scenario(ray_address=address, ray_runtime_env={"env_vars": {"FEDROBUST_PROBE": "on"}})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    env_before = dict(os.environ)
    done = fedrobust("run", str(path), "--out", str(tmp_path / "run"), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["rounds"]) == 1
    # the simulation's Ray driver and its ClientApp actors ran in the cluster's session
    drivers = list((session / "logs").glob("python-core-driver-*"))
    assert drivers, "no Ray driver joined the cluster"
    assert os.environ == env_before


@pytest.mark.slow  # ~60 s: a 1,000-client simulation, 2 rounds of 10 clients
def test_a_simulation_of_1000_clients_completes_recording_only_the_sampled_ones(
    tmp_path: Path,
) -> None:
    from fedrobust.sampling import round_clients
    from fedrobust.scenario import load_scenario

    shipped = Path(__file__).resolve().parent.parent / "scenarios" / "many_clients.yaml"
    done = fedrobust("run", str(shipped), "--out", str(tmp_path / "run"), "--rounds", "2",
                     timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["rounds"]) == 2
    sc = load_scenario(shipped)
    assert sc.data.partition.num_clients == 1000
    for r in metrics["rounds"]:
        assert {c["client"] for c in r["clients"]} == set(round_clients(sc, r["round"]))
        assert len(r["clients"]) == 10
    assert metrics["data"]["clients_summary"]["count"] == 1000
