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
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedrobust.apps import FLOWER_APP_DIR as APP_DIR
from fedrobust.data.cache import CACHE_ENV
from fedrobust.data.store import STORE_ENV
from fedrobust.errors import FedrobustError
from fedrobust.extras import require
from fedrobust.launch import (
    BIN_DIR,
    RunWatch,
    flower_env,
    follow_flwr_run,
    free_port,
    stop_process,
    wait_healthy,
)
from fedrobust.lifetime import Lifetime, die_with_parent
from fedrobust.rundir import RunDir
from fedrobust.scenario import Scenario


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


def ray_environment(scenario: Scenario) -> dict[str, str | None]:
    """Environment variables that point Ray at ``simulation.ray_address`` (``None``: unset).

    Flower's simulation calls ``ray.init`` with neither an address nor our runtime
    environment, so both travel the way Ray reads them from the environment:
    ``RAY_ADDRESS`` and, for ``ray_runtime_env``, the job configuration Ray's job
    manager would inject (``RAY_JOB_CONFIG_JSON_ENV_VAR``), merged with Flower's own
    ``env_vars`` (``RAY_OVERRIDE_JOB_RUNTIME_ENV``). Without ``ray_address`` every one
    of them is removed, so the run gets its own local Ray instance whatever the shell
    exported.
    """
    sim = scenario.simulation
    env: dict[str, str | None] = dict.fromkeys(
        ("RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR", "RAY_OVERRIDE_JOB_RUNTIME_ENV")
    )
    if sim.ray_address is not None:
        env["RAY_ADDRESS"] = sim.ray_address
    if sim.ray_runtime_env is not None:
        env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = json.dumps({"runtime_env": sim.ray_runtime_env})
        env["RAY_OVERRIDE_JOB_RUNTIME_ENV"] = "1"
    return env


def prepare_store(scenario: Scenario, run_dir: Path) -> Path | None:
    """Build (or reuse) the run's federation store, ``RUN_DIR/data/``
    (:mod:`fedrobust.data.store`); ``None`` on a Ray cluster (``simulation.ray_address``),
    whose workers may not see the run directory."""
    if scenario.simulation.ray_address is not None:
        return None
    from fedrobust.data.store import ensure_store

    directory = RunDir(run_dir).data
    ensure_store(directory, scenario.data, scenario.seed)
    return directory


def launch_flower_app(
    app_dir: Path,
    run_dir: Path,
    run_config: list[str],
    federation: list[str],
    keep_waiting: Callable[[], bool],
    extra_env: Mapping[str, str | None] | None = None,
) -> None:
    """Run the Flower app in ``app_dir`` on a private simulation SuperLink.

    Starts ``flower-superlink --simulation`` on a free loopback port with its own
    ``FLWR_HOME`` (``run_dir/.flwr``), then ``flwr run APP local --stream``; calls
    ``keep_waiting()`` twice a second until it returns False or ``flwr run`` exits; then
    stops every process it started. Logs go to ``run_dir/logs/``. A
    :class:`~fedrobust.lifetime.Lifetime` ties every process of the run (SuperExec and
    Ray included) to this one: they die with it, also when it is SIGKILLed.

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
    extra_env : mapping, optional
        Variables to set (``None``: remove) in the SuperLink's environment, which the
        simulation and Ray inherit (:func:`ray_environment`).

    Raises
    ------
    RunFailed
        When the SuperLink does not start or stops during the run.
    """
    layout = RunDir(run_dir)
    layout.logs.mkdir(parents=True, exist_ok=True)
    flwr_home = layout.flwr_home
    shutil.rmtree(flwr_home, ignore_errors=True)  # left by a killed run
    flwr_home.mkdir()
    port = free_port()
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n',
        encoding="utf-8",
    )
    lifetime = Lifetime()
    env = lifetime.env(flower_env(flwr_home))
    env[CACHE_ENV] = "off"  # ClientApps live as long as the run: the in-process cache holds
    for key, value in (extra_env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    superlink: subprocess.Popen[bytes] | None = None
    superlink_log = layout.superlink_log
    try:
        with superlink_log.open("wb") as sink:
            superlink = subprocess.Popen(
                [str(BIN_DIR / "flower-superlink"), "--insecure", "--simulation",
                 "--isolation", "subprocess", "--host", "127.0.0.1", "--port", str(port)],
                stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=run_dir,
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        wait_healthy(f"http://127.0.0.1:{port}/health", superlink, superlink_log)
        layout.flwr_log.unlink(missing_ok=True)
        follow_flwr_run(
            [str(app_dir), "local", "--stream", "--run-config", " ".join(run_config),
             "--federation-config", " ".join(federation)],
            layout.flwr_log, env, run_dir, superlink, keep_waiting,
        )  # fmt: skip
    finally:
        stop_process(superlink)
        lifetime.close()
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
    watch = RunWatch(
        scenario_path, scenario, run_dir, rounds=rounds, seed=seed, resume=resume,
        on_round=on_round,
    )  # fmt: skip
    federation = federation_config(scenario)
    store = prepare_store(scenario, run_dir)  # before any process: every one maps it
    env = {**ray_environment(scenario), STORE_ENV: None if store is None else str(store)}
    launch_flower_app(APP_DIR, run_dir, watch.run_config, federation, watch.keep_waiting, env)
    return watch.result(RunDir(run_dir).flwr_log)


def check_simulation() -> None:
    """Refuse before anything starts when a simulation cannot run: Ray (the ``simulation``
    extra) missing, or the Flower app's manifest (``fedrobust/apps/flower``) missing."""
    require("a Flower simulation", "ray")
    if not (APP_DIR / "pyproject.toml").is_file():
        raise FedrobustError(str(APP_DIR), "the Flower app's pyproject.toml is missing")


def check_resumable(run_dir: Path, scenario: Scenario) -> int:
    """Rounds already done in ``run_dir``.

    Raises
    ------
    FedrobustError
        Naming the file or field: a continual scenario, a missing or malformed checkpoint
        or metrics.json, a checkpoint of another scenario or ahead of metrics.json (not
        this run's), a run that stopped early or already did ``train.rounds`` rounds; a
        scenario with ``train.client_momentum`` (its state lives in the clients).
    """
    from fedrobust.checkpoint import load_checkpoint
    from fedrobust.report.metrics import read_metrics

    if scenario.continual is not None:
        raise FedrobustError(
            "--resume",
            "continual runs cannot resume: the clients' replay buffers, Fisher information "
            "and task history live in the simulation's memory, which a new one starts without",
        )
    if scenario.train.client_momentum is not None:
        raise FedrobustError(
            "--resume",
            "runs with train.client_momentum cannot resume: each client's momentum lives "
            "in the simulation's memory, which a new one starts without",
        )
    ckpt = load_checkpoint(run_dir, scenario.resume_digest())
    doc = read_metrics(run_dir)
    if ckpt.round > len(doc["rounds"]):  # metrics.json is written before the checkpoint
        raise FedrobustError(
            str(RunDir(run_dir).checkpoint),
            f"holds round {ckpt.round} but metrics.json only {len(doc['rounds'])} rounds: "
            "it is not this run's checkpoint; cannot resume",
        )
    if doc["status"] == "completed" and (doc.get("final") or {}).get("stopped_early"):
        raise FedrobustError(str(run_dir), "the run stopped early and is done; nothing to resume")
    if ckpt.round >= scenario.train.rounds:
        raise FedrobustError(
            "train.rounds",
            f"the run already finished {ckpt.round} rounds; raise --rounds to extend it",
        )
    return ckpt.round
