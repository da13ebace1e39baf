"""Run a scenario through Flower's simulation runtime.

``flwr run`` against a local simulation SuperLink (``run_simulation`` is deprecated in
flwr 1.42). We start that SuperLink ourselves, on a free loopback port and with a
private ``FLWR_HOME``, so parallel runs do not collide, and stop every process it
started when the run ends;
``flwr run --stream`` blocks until the run ends. Flower's and Ray's output goes to
``RUN_DIR/logs/``; the console gets one line per round, read from metrics.json.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedrobust.errors import FedrobustError
from fedrobust.report.metrics import METRICS_FILE
from fedrobust.scenario import Scenario, scenario_to_yaml

APP_DIR = Path(__file__).resolve().parents[1]
QUIET_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "RAY_DEDUP_LOGS": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
}


class RunFailed(RuntimeError):
    """The federated run did not complete; the message says why and where the logs are."""


def resolve_run_dir(scenario: Scenario, out: str | None) -> Path:
    """``--out``, else the scenario's ``output.dir``, else ``runs/<name>``; absolute."""
    return Path(out or scenario.output.dir or f"runs/{scenario.name}").expanduser().resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunFailed(
                f"the local SuperLink exited (code {process.returncode}); see {log_path}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RunFailed(f"the local SuperLink did not start within 60 s; see {log_path}")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (SuperExec, the simulation, Ray), from ``ps``."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        child, parent = (int(v) for v in line.split())
        children.setdefault(parent, []).append(child)
    found, frontier = [], list(children.get(pid, []))
    while frontier:
        current = frontier.pop()
        found.append(current)
        frontier.extend(children.get(current, []))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(process: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """Stop ``process`` and everything it started, politely first, then for good.

    SuperExec and the simulation run in sessions of their own, so killing the process
    group is not enough: the whole tree of descendants is waited for.
    """
    if process is None:
        return
    below = _descendants(process.pid)
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (
        process.poll() is None or any(_alive(pid) for pid in below)
    ):
        time.sleep(0.1)
    for pid in [process.pid, *below]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def _read_metrics(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def federation_config(scenario: Scenario) -> list[str]:
    """The ``--federation-config`` entries for ``scenario``: supernodes and resources."""
    sim = scenario.simulation
    entries = [
        f"num-supernodes={scenario.data.partition.num_clients}",
        f"client-resources-num-cpus={sim.cpus_per_client}",
        f"client-resources-num-gpus={sim.gpus_per_client}",
    ]
    if sim.num_cpus is not None:
        entries.append(f"init-args-num-cpus={sim.num_cpus}")
    return entries


def launch_flower_app(
    app_dir: Path,
    run_dir: Path,
    run_config: list[str],
    federation: list[str],
    keep_waiting: Callable[[], bool],
) -> None:
    """Run the Flower app in ``app_dir`` on a private simulation SuperLink.

    Starts ``flower-superlink --simulation`` on a free loopback port with its own
    ``FLWR_HOME`` (``run_dir/.flwr``), then ``flwr run APP local --stream``; calls
    ``keep_waiting()`` twice a second until it returns False or ``flwr run`` exits; then
    stops every process it started. Logs go to ``run_dir/logs/``.

    Parameters
    ----------
    app_dir : Path
        Directory holding the app's ``pyproject.toml``.
    run_dir : Path
        Working directory; gets ``logs/`` and the private ``.flwr``.
    run_config, federation : list[str]
        ``key=value`` items for ``--run-config`` and ``--federation-config``.
    keep_waiting : callable
        Polled while the run goes on; return False to stop waiting.

    Raises
    ------
    RunFailed
        When the SuperLink does not start or stops during the run.
    """
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    flwr_home = run_dir / ".flwr"
    shutil.rmtree(flwr_home, ignore_errors=True)  # left by a killed run
    flwr_home.mkdir()
    port = _free_port()
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n',
        encoding="utf-8",
    )
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        **QUIET_ENV,
        "FLWR_HOME": str(flwr_home),
        "PATH": str(bin_dir) + os.pathsep + os.environ.get("PATH", ""),
    }
    superlink: subprocess.Popen[bytes] | None = None
    client: subprocess.Popen[bytes] | None = None
    superlink_log = logs / "superlink.log"
    try:
        with superlink_log.open("wb") as sink:
            superlink = subprocess.Popen(
                [str(bin_dir / "flower-superlink"), "--insecure", "--simulation",
                 "--isolation", "subprocess", "--host", "127.0.0.1", "--port", str(port)],
                stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=run_dir,
                start_new_session=True,
            )  # fmt: skip
        _wait_healthy(port, superlink, superlink_log)
        with (logs / "flwr.log").open("wb") as sink:
            client = subprocess.Popen(
                [str(bin_dir / "flwr"), "run", str(app_dir), "local", "--stream",
                 "--run-config", " ".join(run_config),
                 "--federation-config", " ".join(federation)],
                stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=run_dir,
                start_new_session=True,
            )  # fmt: skip
        while client.poll() is None and keep_waiting():
            if superlink.poll() is not None:
                raise RunFailed(f"the local SuperLink stopped; see {superlink_log}")
            time.sleep(0.5)
        try:  # let the log stream drain: `flwr run --stream` ends with the run
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _stop(client)
        _stop(superlink)
        shutil.rmtree(flwr_home, ignore_errors=True)


def run_simulation(
    scenario_path: Path,
    scenario: Scenario,
    run_dir: Path,
    *,
    rounds: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` in a Flower simulation and return the finished metrics.json.

    Parameters
    ----------
    scenario_path : Path
        The YAML file (the ServerApp reads it; overrides below apply on top).
    scenario : Scenario
        The same scenario, already validated (with the overrides applied).
    run_dir : Path
        Where metrics.json, the model, plots and logs go.
    rounds, seed : int, optional
        Overrides of ``train.rounds`` and ``seed``.
    resume : bool
        Continue from ``run_dir/checkpoint.pt``; earlier rounds stay in metrics.json.
    on_round : callable, optional
        Called with each round's figures as soon as metrics.json has them.

    Raises
    ------
    RunFailed
        When the run did not complete; earlier rounds stay in metrics.json.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / METRICS_FILE
    old = _read_metrics(metrics_path) if resume else None
    if not resume:
        metrics_path.unlink(missing_ok=True)
    token = uuid.uuid4().hex
    (run_dir / "scenario.yaml").write_text(scenario_to_yaml(scenario), encoding="utf-8")
    federation = federation_config(scenario)
    run_config = [
        f"scenario={json.dumps(str(scenario_path.resolve()))}",
        f"out-dir={json.dumps(str(run_dir))}",
        f"rounds={rounds or 0}",
        f"seed={-1 if seed is None else seed}",
        f"resume={'true' if resume else 'false'}",
        f'token="{token}"',
    ]
    seen = len(old["rounds"]) if old else 0

    def ours() -> dict[str, Any] | None:
        doc = _read_metrics(metrics_path)
        return doc if doc is not None and doc.get("token") == token else None

    def keep_waiting() -> bool:
        nonlocal seen
        doc = ours()
        if doc is None:
            return True
        if on_round is not None:
            for row in doc["rounds"][seen:]:
                on_round(row)
        seen = max(seen, len(doc["rounds"]))
        return doc["status"] == "running"

    launch_flower_app(APP_DIR, run_dir, run_config, federation, keep_waiting)
    keep_waiting()  # print rounds that landed after the last poll
    logs = run_dir / "logs"
    doc = ours()
    if doc is None:
        tail = (logs / "flwr.log").read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RunFailed(f"the run wrote no metrics; see {logs}\n{tail}")
    if doc["status"] == "failed":
        raise RunFailed(f"{doc['error']} (logs in {logs})")
    if doc["status"] != "completed":
        raise RunFailed(f"the run stopped early after {len(doc['rounds'])} rounds; see {logs}")
    return doc


def check_app_dir() -> None:
    """The Flower app (pyproject.toml with [tool.flwr.app]) must sit beside the package."""
    if not (APP_DIR / "pyproject.toml").is_file():
        raise FedrobustError(
            str(APP_DIR),
            "no pyproject.toml here: install fedrobust from its checkout (pip install -e .)",
        )


def check_resumable(run_dir: Path, scenario: Scenario) -> int:
    """Rounds already done in ``run_dir``; refuses a missing checkpoint or another scenario."""
    from fedrobust.checkpoint import load_checkpoint

    if scenario.continual is not None:
        raise FedrobustError(
            "--resume",
            "continual runs cannot resume: the clients' replay buffers, Fisher information "
            "and task history live in the simulation's memory, which a new one starts without",
        )
    ckpt = load_checkpoint(run_dir, scenario.resume_digest())
    doc = _read_metrics(run_dir / METRICS_FILE)
    if doc is None:
        raise FedrobustError(str(run_dir / METRICS_FILE), "missing or unreadable; cannot resume")
    if doc["status"] == "completed" and (doc.get("final") or {}).get("stopped_early"):
        raise FedrobustError(str(run_dir), "the run stopped early and is done; nothing to resume")
    if ckpt.round >= scenario.train.rounds:
        raise FedrobustError(
            "train.rounds",
            f"the run already finished {ckpt.round} rounds; raise --rounds to extend it",
        )
    return ckpt.round
