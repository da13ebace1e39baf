"""ClientApp start-up: import time, the cost of one message in a fresh process, a deployed round.

In a deployment Flower starts a new ClientApp process for every message, so each
message pays the interpreter, the imports and whatever the client rebuilds. Three
measures, each printed as a markdown table:

(a) imports: ``import fedrobust.apps.clients.client_app`` beside ``import torch`` alone,
    each in a fresh interpreter (``-c`` with ``PYTHONPATH`` at the checkout), median of
    ``--runs`` runs each, the two alternating after one discarded warm-up. ``import s``
    is timed inside the interpreter around the import; ``process s`` is the whole
    subprocess, interpreter start included. Target: the ClientApp's import at most 1.5x torch's.
(b) one ``train`` message in a fresh process (this file run with ``--child``), phase by
    phase: the imports; decoding the message (the recipe's ConfigRecord and the global
    model, as files written by the parent); reading the recipe (``read_recipe``); the
    client's data (``load_client_data``): cold (an empty partition cache: the federation
    is built and this client's partition written) and warm (a second process reads the
    cache); building the model; the local round (the ``train`` handler itself, which
    reads the recipe, the data and the model again, warm). Median of ``--breakdown-runs``
    processes each; the last row lists the heavy packages the process loaded.
(c) a deployed round: ``scenarios/edge.yaml`` (3 SuperNodes behind a TLS SuperLink with
    node authentication, on loopback) through ``fedrobust.deploy.local.run_deployment``,
    the machinery of ``fedrobust deploy``, for ``--rounds`` rounds in a fresh directory
    (so round 1 builds each node's partition cache). Reported: each round's ``seconds``
    from metrics.json and their median over rounds 2..N. Target: at most 5 s per round.

Run: ``.venv/bin/python benchmarks/startup.py [--runs 5] [--breakdown-runs 3]
[--rounds 5] [--skip-deploy]`` from the checkout (about 2 minutes on 2 idle cores; the
deployed round about 1 more). One-run timings on a shared machine move by tens of
percent: compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EDGE = ROOT / "scenarios" / "edge.yaml"
HEAVY = ("opacus", "sklearn", "scipy", "flwr_datasets", "datasets", "torchattacks",
         "matplotlib", "onnx", "pandas")  # fmt: skip
IMPORT_TARGET = 1.5
ROUND_TARGET = 5.0
PHASES = ("imports", "message", "recipe", "data", "model", "local round")


def _env() -> dict[str, str]:
    """The child's environment: the checkout importable, no stray partition cache."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


# ================================================================ (a) import time


def time_import(module: str) -> tuple[float, float]:
    """(import seconds, process seconds) of ``import module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    return float(done.stdout.strip().splitlines()[-1]), wall


def import_table(runs: int) -> str:
    """Table (a): the ClientApp's import beside torch's, medians of ``runs``."""
    modules = ("torch", "fedrobust.apps.clients.client_app")
    for module in modules:
        time_import(module)  # warm-up: bytecode caches, page cache
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in modules}
    for _ in range(runs):
        for module in modules:
            samples[module].append(time_import(module))
    med = {
        m: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
        for m, v in samples.items()
    }
    torch_import, torch_process = med["torch"]
    lines = [
        f"| import (fresh process, median of {runs}) | import s | process s | import ratio |"
        " process ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for module in modules:
        imp, proc = med[module]
        lines.append(
            f"| `import {module}` | {imp:.2f} | {proc:.2f} | {imp / torch_import:.2f}x | "
            f"{proc / torch_process:.2f}x |"
        )
    ratio = med["fedrobust.apps.clients.client_app"][0] / torch_import
    verdict = "met" if ratio <= IMPORT_TARGET else "NOT met"
    lines.append(f"\nimport ratio target <= {IMPORT_TARGET}x: {verdict} ({ratio:.2f}x)")
    return "\n".join(lines)


# ================================================================ (b) one message


def write_message(directory: Path, scenario_path: Path) -> None:
    """The recipe and the global model of a round-1 ``train`` message, as files."""
    import torch

    from fedrobust.data import build_federation
    from fedrobust.models.build import build_model
    from fedrobust.recipe import recipe_config
    from fedrobust.scenario import load_scenario

    scenario = load_scenario(scenario_path)
    spec = build_federation(scenario.data, scenario.seed).spec
    torch.manual_seed(scenario.seed)
    model = build_model(scenario.model, spec)
    config = dict(recipe_config(scenario, spec))
    config["server-round"] = 1
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    torch.save(model.state_dict(), directory / "model.pt")


def child(message_dir: Path, cache: Path) -> None:
    """Handle one ``train`` message in this (fresh) process, timing each phase; prints JSON."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    import fedrobust.apps.clients.client_app as client_app  # the imports a ClientApp process pays

    times["imports"] = time.perf_counter() - t

    import torch
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict

    from fedrobust.federation.local_round import load_client_data
    from fedrobust.models.build import build_model
    from fedrobust.recipe import read_recipe

    t = time.perf_counter()
    config = ConfigRecord(json.loads((message_dir / "config.json").read_text(encoding="utf-8")))
    arrays = ArrayRecord(torch.load(message_dir / "model.pt", weights_only=True))
    times["message"] = time.perf_counter() - t

    t = time.perf_counter()
    scenario, spec = read_recipe(config)
    times["recipe"] = time.perf_counter() - t

    node_config = {"partition-id": 0, "num-partitions": scenario.data.partition.num_clients,
                   "cache-dir": str(cache)}  # fmt: skip
    context = Context(run_id=1, node_id=1, node_config=node_config, state=RecordDict(),
                      run_config={})  # fmt: skip
    t = time.perf_counter()
    load_client_data(scenario, spec, context)
    times["data"] = time.perf_counter() - t

    t = time.perf_counter()
    model = build_model(scenario.model, spec)
    model.load_state_dict(arrays.to_torch_state_dict())
    times["model"] = time.perf_counter() - t

    metadata = Metadata(
        run_id=1, message_id="m1", src_node_id=0, dst_node_id=1, reply_to_message_id="",
        group_id="1", created_at=time.time(), ttl=600, message_type="train",
    )  # fmt: skip
    msg = Message(metadata=metadata, content=RecordDict({"arrays": arrays, "config": config}))
    t = time.perf_counter()
    client_app.train(msg, context)
    times["local round"] = time.perf_counter() - t
    loaded = [name for name in HEAVY if name in sys.modules]
    print(json.dumps({"times": times, "loaded": loaded}))


def run_child(message_dir: Path, cache: Path) -> dict[str, Any]:
    """One fresh process handling the message; its phases, its wall time and what it loaded."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(message_dir), str(cache)],
        cwd=ROOT, env=_env(), capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the message process failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def breakdown_table(runs: int, workdir: Path) -> str:
    """Table (b): one message in a fresh process, cold and warm partition cache."""
    message_dir = workdir / "message"
    message_dir.mkdir()
    write_message(message_dir, EDGE)
    cold, warm = [], []
    for i in range(runs):
        cache = workdir / f"cache-{i}"
        cold.append(run_child(message_dir, cache))  # empty cache: builds and writes
        warm.append(run_child(message_dir, cache))  # a second process: reads it
    lines = [
        f"| one `train` message, fresh process ({EDGE.name}, client 0; median of {runs}) "
        "| cold cache s | warm cache s |",
        "|---|---:|---:|",
    ]

    def med(results: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r["times"][key] for r in results)

    for phase in PHASES:
        lines.append(f"| {phase} | {med(cold, phase):.3f} | {med(warm, phase):.3f} |")
    start_cold = statistics.median(r["wall"] - sum(r["times"].values()) for r in cold)
    start_warm = statistics.median(r["wall"] - sum(r["times"].values()) for r in warm)
    lines.append(f"| interpreter start and exit | {start_cold:.3f} | {start_warm:.3f} |")
    wall_cold = statistics.median(r["wall"] for r in cold)
    wall_warm = statistics.median(r["wall"] for r in warm)
    lines.append(f"| **whole process** | **{wall_cold:.3f}** | **{wall_warm:.3f}** |")
    lines.append(
        f"| heavy packages loaded | {', '.join(cold[-1]['loaded']) or 'none'} "
        f"| {', '.join(warm[-1]['loaded']) or 'none'} |"
    )
    return "\n".join(lines)


# ================================================================ (c) deployed round


def deploy_table(rounds: int, workdir: Path) -> str:
    """Table (c): a deployed run of edge.yaml; seconds per round from its metrics.json."""
    from fedrobust.deploy.local import run_deployment
    from fedrobust.scenario import load_scenario

    scenario = load_scenario(EDGE, {"train.rounds": rounds})
    run_dir = workdir / "edge"
    started = time.perf_counter()
    doc = run_deployment(EDGE, scenario, run_dir, directory=workdir / "deploy", rounds=rounds)
    whole = time.perf_counter() - started
    seconds = [float(row["seconds"]) for row in doc["rounds"]]
    later = seconds[1:] or seconds
    median = statistics.median(later)
    lines = [
        f"| deployed `{EDGE.name}` (3 SuperNodes, TLS, loopback) | seconds |",
        "|---|---:|",
    ]
    lines += [f"| round {i} | {s:.2f} |" for i, s in enumerate(seconds, start=1)]
    lines.append(f"| **median, rounds 2..{len(seconds)}** | **{median:.2f}** |")
    lines.append(f"| whole run (federation up, {len(seconds)} rounds, down) | {whole:.1f} |")
    verdict = "met" if median <= ROUND_TARGET else "NOT met"
    lines.append(f"\nround target <= {ROUND_TARGET} s: {verdict} ({median:.2f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per import (a)")
    parser.add_argument(
        "--breakdown-runs", type=int, default=3, help="message processes per cache state (b)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the deployed run (c)")
    parser.add_argument("--skip-deploy", action="store_true", help="leave out (c)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--child", nargs=2, metavar=("MESSAGE_DIR", "CACHE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return 0
    command = " ".join([".venv/bin/python", "benchmarks/startup.py", *sys.argv[1:]])
    workdir = Path(tempfile.mkdtemp(prefix="fedrobust-startup-"))
    tables = []
    try:
        print("(a) imports ...", flush=True)
        tables.append(import_table(args.runs))
        print("(b) one message ...", flush=True)
        tables.append(breakdown_table(args.breakdown_runs, workdir))
        if not args.skip_deploy:
            print(f"(c) deployed run, {args.rounds} rounds ...", flush=True)
            tables.append(deploy_table(args.rounds, workdir))
    finally:
        if args.keep:
            print(f"work directory kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nPrinted by `{command}` ({os.cpu_count()} CPUs):\n")
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
