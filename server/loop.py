"""The server's round loop: sample, configure, transport, screen, hooks, aggregate, evaluate.

Flower's ``Strategy.start`` samples with the global ``random`` module and aborts on one bad
reply; this loop keeps Flower's strategies for what they do best (``configure_train`` /
``aggregate_train``: FedAvg, FedProx, FedAdam, ...) and owns sampling (seeded, by partition id),
the transport (plain or SecAgg+, both screened by one function) and central evaluation, so
runs are deterministic and survive bad clients. Features join through their server hooks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedrobust.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, save_model
from fedrobust.config.checks import check_with_data
from fedrobust.federation.discovery import discover_clients, rejoin_clients
from fedrobust.federation.records import for_strategy
from fedrobust.federation.registry import server_hooks
from fedrobust.federation.server_hooks import RoundView, ServerHook, ServerSetup
from fedrobust.federation.transport import Transport, build_transport
from fedrobust.models.build import initial_model
from fedrobust.models.registry import InputSpec
from fedrobust.models.transfer import keep_frozen
from fedrobust.personalization.evaluation import evaluate_clients
from fedrobust.privacy.canaries import scenario_federation
from fedrobust.recipe import recipe_config
from fedrobust.report.html import write_report
from fedrobust.report.metrics import RunRecorder
from fedrobust.sampling import round_clients
from fedrobust.scenario import Scenario
from fedrobust.strategy.build import build_strategy, load_strategy_state, strategy_state
from fedrobust.train import EvalResult, evaluate, round_lr

log = logging.getLogger("fedrobust.server")


class _SampledGrid:
    """Shows a Flower strategy only the nodes our loop sampled for the round."""

    def __init__(self, node_ids: Iterable[int]) -> None:
        self._node_ids = list(node_ids)

    def get_node_ids(self) -> list[int]:
        return list(self._node_ids)


def run_federation(
    grid: Grid, scenario: Scenario, run_dir: Path, *, resume: bool = False, token: str = ""
) -> dict[str, object]:
    """Run every round of ``scenario`` on ``grid``; write results into ``run_dir``.

    Parameters
    ----------
    grid : Grid
        Flower's grid to the client nodes.
    scenario : Scenario
        The validated scenario.
    run_dir : Path
        Where metrics.json, the checkpoint, the model and plots go.
    resume : bool
        Continue from ``run_dir/checkpoint.pt`` (same scenario but ``train.rounds``).
    token : str
        Identifies this launch in metrics.json, so a watcher can tell it from an old file.

    Returns the ``final`` figures written to metrics.json.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(run_dir, scenario.resume_digest()) if resume else None
    # metrics.json, and the live trackers the scenario asks for (TensorBoard, MLflow)
    recorder = RunRecorder.start(run_dir, scenario, ckpt.round if ckpt else 0, token=token)
    try:
        fed = scenario_federation(scenario)
        check_with_data(scenario, fed)  # what `fedrobust run` refuses, `flwr run .` refuses
        k = fed.spec.num_classes
        torch.manual_seed(scenario.seed)
        model, init = initial_model(scenario.model, fed.spec, scenario.seed)
        strategy = build_strategy(scenario)
        if ckpt is None:
            recorder.set_data(fed.summary())
            recorder.initial(
                {"round": 0, **init, **_eval_figures(evaluate(model, fed.x_test, fed.y_test, k))}
            )
        sizes: dict[int, int] = {}
        nodes = discover_clients(grid, scenario, fed.spec, sizes)
        hooks = server_hooks(ServerSetup(scenario, fed, sizes, run_dir))
        if ckpt is not None:
            model.load_state_dict(ckpt.model)
            load_strategy_state(strategy, ckpt.strategy)
            torch.set_rng_state(ckpt.torch_rng)
            for hook in hooks:
                if hook.name in ckpt.extra:
                    hook.load_state_dict(ckpt.extra[hook.name])  # type: ignore[arg-type]
            log.info("resuming after round %d", ckpt.round)
        transport = build_transport(scenario, sizes, nodes)
        arrays = ArrayRecord(model.state_dict())
        for rnd in range(1 if ckpt is None else ckpt.round + 1, scenario.train.rounds + 1):
            started = time.monotonic()
            rejoined = rejoin_clients(grid, scenario, fed.spec, nodes)
            for pid, node in rejoined.items():
                log.info("client %d rejoined as node %d", pid, node)
            view, new_arrays, figures = _train_round(
                grid, transport, strategy, hooks, scenario, fed.spec, nodes, rnd, arrays, model
            )
            if rejoined:
                figures["rejoined"] = sorted(rejoined)
            model.load_state_dict(keep_frozen(model, new_arrays.to_torch_state_dict()))
            # Re-derive the global record from the model: Flower's FedAdam/FedYogi return
            # float64 arrays, which float32 client replies would no longer match.
            arrays = ArrayRecord(model.state_dict())
            result = evaluate(model, fed.x_test, fed.y_test, k)
            figures = {"round": rnd, **_eval_figures(result), **figures}
            for hook in hooks:
                figures.update(hook.observe(view, figures, model))
            stop = [hook.should_stop(rnd, figures, model) for hook in hooks]
            figures["seconds"] = round(time.monotonic() - started, 3)
            # metrics first: a crash in between re-runs this round on resume, never skips it
            recorder.add_round(figures)
            save_checkpoint(run_dir, _checkpoint(scenario, rnd, model, strategy, hooks))
            log.info("round %d: accuracy %.4f loss %.4f", rnd, figures["accuracy"], figures["loss"])
            if any(stop):
                break
        # ``final`` describes the model the run keeps (model.pt): the last round's, unless
        # a hook (early stopping, on validation figures) kept another; measured again here
        totals: dict[str, Any] = {"model_round": recorder.last_round}
        for hook in hooks:
            totals.update(hook.finish(model, totals))
        totals.update(_eval_figures(evaluate(model, fed.x_test, fed.y_test, k)))
        totals.update(
            evaluate_clients(grid, scenario, fed.spec, nodes, model, totals["model_round"])
        )
        save_model(run_dir, model.state_dict())
        final = recorder.finish(totals)
        write_report(run_dir)
        return final
    except BaseException as exc:
        recorder.fail(f"{type(exc).__name__}: {exc}")
        try:
            write_report(run_dir)  # best effort: the rounds so far, and the error
        except Exception:  # noqa: BLE001 - never hide the original error
            log.exception("could not write the report")
        raise
    finally:
        recorder.close_trackers()  # after the report: MLflow keeps it with the model


def _train_round(
    grid: Grid,
    transport: Transport,
    strategy: Strategy,
    hooks: list[ServerHook],
    scenario: Scenario,
    spec: InputSpec,
    nodes: dict[int, int],
    rnd: int,
    arrays: ArrayRecord,
    model: torch.nn.Module,
) -> tuple[RoundView, ArrayRecord, dict[str, Any]]:
    """Sample, configure, transport, transform, aggregate, each hook's ``aggregated``; return
    the round as the hooks see it, the new global weights and the round's figures. ``model``
    holds the round's global weights (FLTrust trains a copy)."""
    started = time.monotonic()
    chosen = round_clients(scenario, rnd)
    sampled = {nodes[pid]: pid for pid in chosen}
    config = recipe_config(scenario, spec)
    messages = strategy.configure_train(rnd, arrays, config, _SampledGrid(sampled))  # type: ignore[arg-type]
    for hook in hooks:
        messages = hook.configure(rnd, list(messages), sampled)
    outcome = transport(grid, rnd, list(messages), arrays, sampled)
    replies, extra = outcome.replies, dict(outcome.figures)
    for hook in hooks:
        replies, figures = hook.transform(rnd, replies, arrays, sampled, model)
        extra.update(figures)
    aggregate = [for_strategy(msg, strategy) for msg in replies]
    new_arrays = strategy.aggregate_train(rnd, aggregate)[0] if aggregate else None
    for hook in hooks:  # e.g. continual learning's class-aware head, weight aligning
        new_arrays = hook.aggregated(rnd, new_arrays, replies, arrays)
    clients = [_client_figures(msg, sampled) for msg in outcome.contributors]
    train = scenario.train
    figures = {
        "lr": round_lr(train.lr_schedule, train.optimizer.lr, rnd, train.rounds),
        "sampled": len(chosen),
        "train_seconds": round(time.monotonic() - started, 3),  # send to aggregate
        "aggregated": len(outcome.contributors) if new_arrays is not None else 0,
        "dropped": dict(sorted(outcome.dropped.items())),
        "train_loss": _weighted(clients, "train_loss"),
        "val_loss": _weighted(clients, "val_loss"),
        "val_accuracy": _weighted(clients, "val_accuracy"),
        "val_balanced_accuracy": _weighted(clients, "val_balanced_accuracy"),
        "clients": clients,
        **extra,
    }
    view = RoundView(rnd, sampled, arrays, outcome, new_arrays is not None)
    return view, arrays if new_arrays is None else new_arrays, figures


def _checkpoint(
    scenario: Scenario,
    rnd: int,
    model: torch.nn.Module,
    strategy: Strategy,
    hooks: list[ServerHook],
) -> Checkpoint:
    """The run's state after round ``rnd``: one entry per hook with state."""
    return Checkpoint(
        round=rnd,
        digest=scenario.resume_digest(),
        model=model.state_dict(),
        strategy=strategy_state(strategy),
        extra={hook.name: hook.state_dict() for hook in hooks if hook.name},
        torch_rng=torch.get_rng_state(),
    )


def _eval_figures(result: EvalResult) -> dict[str, object]:
    return {
        "accuracy": result.accuracy,
        "loss": result.loss,
        "balanced_accuracy": result.balanced_accuracy,
        "per_class_recall": result.recall,
    }


def _client_figures(msg: Message, partition_of: dict[int, int]) -> dict[str, float | int]:
    metrics = msg.content.metric_records["metrics"]
    figures: dict[str, float | int] = {
        "client": partition_of[msg.metadata.src_node_id],
        "num_examples": int(metrics["num-examples"]),  # type: ignore[arg-type]
        "train_loss": float(metrics.get("train-loss", float("nan"))),  # type: ignore[arg-type]
        "val_accuracy": float(metrics.get("val-accuracy", float("nan"))),  # type: ignore[arg-type]
        "val_loss": float(metrics.get("val-loss", float("nan"))),  # type: ignore[arg-type]
        "val_balanced_accuracy": float(metrics.get("val-balanced-accuracy", float("nan"))),  # type: ignore[arg-type]
    }
    if "epsilon" in metrics:  # the client's own accountant, beside the server's ledger
        figures["epsilon"] = float(metrics["epsilon"])  # type: ignore[arg-type]
    return figures


def _weighted(clients: list[dict[str, float | int]], key: str) -> float | None:
    pairs = [(c[key], c["num_examples"]) for c in clients if c[key] == c[key]]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None
