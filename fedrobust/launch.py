"""Start Flower's processes and follow a run through its metrics.json.

Shared by the simulation (``fedrobust.simulation``) and the local deployment
(``fedrobust.deploy.local``): both start a SuperLink on a free port with a private
``FLWR_HOME``, launch the app with ``flwr run ... --stream``, print each round as it
lands in metrics.json, and stop every process they started. Every process is started
with ``fedrobust.lifetime`` (``die_with_parent``, the run's environment marker), so none
outlives the CLI, even when the CLI is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedrobust.lifetime import die_with_parent
from fedrobust.rundir import RunDir, discard_checkpoint
from fedrobust.scenario import Scenario, scenario_to_yaml

BIN_DIR = Path(sys.executable).parent
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


def flower_env(flwr_home: Path) -> dict[str, str]:
    """Environment for Flower's commands: quiet, offline, this FLWR_HOME, this venv first."""
    return {
        **os.environ,
        **QUIET_ENV,
        "FLWR_HOME": str(flwr_home),
        "PATH": str(BIN_DIR) + os.pathsep + os.environ.get("PATH", ""),
    }


def free_port() -> int:
    """A TCP port on loopback nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    ca_cert: Path | None = None,
    timeout: float = 60.0,
) -> None:
    """Poll ``url`` (a SuperLink's ``/health``) until it answers 200.

    Raises
    ------
    RunFailed
        When the process exits first, or after ``timeout`` seconds.
    """
    context = ssl.create_default_context(cafile=str(ca_cert)) if ca_cert is not None else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunFailed(f"the SuperLink exited (code {process.returncode}); see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RunFailed(f"the SuperLink did not start within {timeout:.0f} s; see {log_path}")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (SuperExec, ServerApp/ClientApp, Ray), from ``ps``."""
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


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """Stop ``process`` and everything it started, politely first, then for good.

    SuperExec and the apps run in sessions of their own, so killing the process
    group is not enough: the whole tree of descendants is waited for. ``grace=0``
    kills at once (a crash, as when a device loses power).
    """
    if process is None:
        return
    below = _descendants(process.pid)
    if grace > 0 and process.poll() is None:
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


def follow_flwr_run(
    args: list[str],
    log_path: Path,
    env: dict[str, str],
    cwd: Path,
    superlink: subprocess.Popen[bytes],
    keep_waiting: Callable[[], bool],
    on_poll: Callable[[], None] | None = None,
) -> None:
    """Start ``flwr run ... --stream`` and poll until the run ends; stop it in any case.

    Polls ``keep_waiting`` (and ``on_poll``, when given) twice a second until it returns
    False or ``flwr run`` exits, then lets the streamed log drain.

    Raises
    ------
    RunFailed
        When the SuperLink stops while the run goes on.
    """
    client: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("ab") as sink:
            client = subprocess.Popen(
                [str(BIN_DIR / "flwr"), "run", *args], stdout=sink, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        while client.poll() is None and keep_waiting():
            if superlink.poll() is not None:
                raise RunFailed(f"the SuperLink stopped; see {log_path.parent}")
            if on_poll is not None:
                on_poll()
            time.sleep(0.5)
        try:  # let the log stream drain: `flwr run --stream` ends with the run
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    finally:
        stop_process(client)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON document at ``path``, or None while it is missing or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


class RunWatch:
    """One launch of a scenario: its ``--run-config``, and its progress in metrics.json.

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
        Without it, an older run's checkpoint.pt and metrics.json are removed first.
    on_round : callable, optional
        Called with each round's figures as soon as metrics.json has them.
    """

    def __init__(
        self,
        scenario_path: Path,
        scenario: Scenario,
        run_dir: Path,
        *,
        rounds: int | None = None,
        seed: int | None = None,
        resume: bool = False,
        on_round: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        self.metrics_path = RunDir(run_dir).metrics
        old = read_json(self.metrics_path) if resume else None
        if not resume:  # a fresh run: nothing of an older one may be resumed later
            discard_checkpoint(run_dir)
            self.metrics_path.unlink(missing_ok=True)
        self.token = uuid.uuid4().hex
        RunDir(run_dir).scenario.write_text(scenario_to_yaml(scenario), encoding="utf-8")
        self.run_config = [
            f"scenario={json.dumps(str(scenario_path.resolve()))}",
            f"out-dir={json.dumps(str(run_dir))}",
            f"rounds={rounds or 0}",
            f"seed={-1 if seed is None else seed}",
            f"resume={'true' if resume else 'false'}",
            f'token="{self.token}"',
        ]
        if scenario.model.init_from is not None:  # relative to where the command runs
            source = Path(scenario.model.init_from).expanduser().resolve()
            self.run_config.append(f"init-from={json.dumps(str(source))}")
        self.on_round = on_round
        self.seen = len(old["rounds"]) if old else 0

    def document(self) -> dict[str, Any] | None:
        """This launch's metrics.json, or None before the ServerApp has written it."""
        doc = read_json(self.metrics_path)
        return doc if doc is not None and doc.get("token") == self.token else None

    def keep_waiting(self) -> bool:
        """Report new rounds; False once the run has finished or failed."""
        doc = self.document()
        if doc is None:
            return True
        if self.on_round is not None:
            for row in doc["rounds"][self.seen :]:
                self.on_round(row)
        self.seen = max(self.seen, len(doc["rounds"]))
        return doc["status"] == "running"

    def result(self, log_file: Path) -> dict[str, Any]:
        """The finished metrics.json.

        Raises
        ------
        RunFailed
            When the run wrote nothing, failed, or stopped before its last round.
        """
        self.keep_waiting()  # report rounds that landed after the last poll
        doc = self.document()
        logs = log_file.parent
        if doc is None:
            tail = log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RunFailed(f"the run wrote no metrics; see {logs}\n{tail}")
        if doc["status"] == "failed":
            raise RunFailed(f"{doc['error']} (logs in {logs})")
        if doc["status"] != "completed":
            raise RunFailed(f"the run stopped early after {len(doc['rounds'])} rounds; see {logs}")
        return doc
