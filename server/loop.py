"""The server's round loop: sample, send recipes, screen replies, aggregate, evaluate.

Flower's ``Strategy.start`` samples with the global ``random`` module and aborts on
one bad reply; this loop keeps Flower's strategies for what they do best
(``configure_train`` / ``aggregate_train``: FedAvg, FedProx, FedAdam, ...) and owns
sampling (seeded, by partition id), reply screening and central evaluation, so runs
are deterministic and survive bad clients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedrobust.adversarial.evaluation import robust_accuracy
from fedrobust.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedrobust.continual import ContinualMetrics
from fedrobust.continual.federated import schedule, seen_mean, task_accuracies
from fedrobust.data import Federation
from fedrobust.models.build import build_model
from fedrobust.models.registry import InputSpec
from fedrobust.privacy.accounting import RunPrivacy
from fedrobust.privacy.canaries import audit_model, scenario_federation
from fedrobust.privacy.client_dp import set_aggregated_count
from fedrobust.recipe import recipe_config
from fedrobust.report.html import write_report
from fedrobust.report.metrics import RunRecorder
from fedrobust.robust.malicious import malicious_clients
from fedrobust.robust.poisoning import backdoor_success
from fedrobust.sampling import round_clients
from fedrobust.scenario import Scenario
from fedrobust.train import EvalResult, evaluate, round_lr
from fedrobust.train.early_stopping import EarlyStopping
from server.adversary import collude
from server.defense import ServerDefense, detection
from server.replies import screen_replies
from server.secagg import secagg_round
from server.strategies import build_strategy, load_strategy_state, strategy_state

log = logging.getLogger("fedrobust.server")
MODEL_FILE = "model.pt"


class _SampledGrid:
    """Shows a Flower strategy only the nodes our loop sampled for the round."""

    def __init__(self, node_ids: Iterable[int]) -> None:
        self._node_ids = list(node_ids)

    def get_node_ids(self) -> list[int]:
        return list(self._node_ids)


def discover_clients(
    grid: Grid, scenario: Scenario, spec: InputSpec, sizes: dict[int, int] | None = None
) -> dict[int, int]:
    """Ask every node for its partition id; return ``{partition id: node id}``.

    Waits up to ``simulation.timeout`` seconds for the scenario's clients to connect.
    Each node also reports its training-set size, stored into ``sizes`` when given.
    """
    num_clients = scenario.data.partition.num_clients
    timeout = scenario.simulation.timeout
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < num_clients:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {len(node_ids)} of {num_clients} clients connected within {timeout:.0f}s"
            )
        time.sleep(0.5)
    mapping: dict[int, int] = {}
    for node, (pid, size) in _ask_partitions(grid, scenario, spec, node_ids, timeout).items():
        if pid in mapping:
            raise RuntimeError(f"two nodes claim partition-id {pid}")
        mapping[pid] = node
        if sizes is not None and size is not None:
            sizes[pid] = size
    expected = set(range(num_clients))
    if not expected <= set(mapping):
        missing = sorted(expected - set(mapping))
        raise RuntimeError(f"no client answered for partition ids {missing}")
    return {pid: mapping[pid] for pid in sorted(expected)}


def rejoin_clients(
    grid: Grid, scenario: Scenario, spec: InputSpec, nodes: dict[int, int]
) -> dict[int, int]:
    """Nodes that came back under a new node id take their partition back.

    A restarted SuperNode keeps its node id when it authenticates with the same key;
    without node authentication it returns as a new node. When a client's node is
    offline and unknown nodes are online, those are asked who they are (a short query)
    and their partitions are remapped. Returns ``{partition id: new node id}``.
    """
    online = set(grid.get_node_ids())
    if set(nodes.values()) <= online:
        return {}
    newcomers = sorted(online - set(nodes.values()))
    if not newcomers:
        return {}
    timeout = min(scenario.simulation.timeout, 30.0)
    moved: dict[int, int] = {}
    answers = _ask_partitions(grid, scenario, spec, newcomers, timeout, strict=False)
    for node, (pid, _) in answers.items():
        if pid in nodes and nodes[pid] not in online:
            nodes[pid] = moved[pid] = node
    return moved


def _ask_partitions(
    grid: Grid,
    scenario: Scenario,
    spec: InputSpec,
    node_ids: list[int],
    timeout: float,
    strict: bool = True,
) -> dict[int, tuple[int, int | None]]:
    """``{node id: (partition id, training-set size or None)}`` of the nodes that answer.

    A node's error reply raises when ``strict``, and is skipped otherwise."""
    queries = [
        Message(
            content=RecordDict({"config": recipe_config(scenario, spec)}),
            message_type=MessageType.QUERY,
            dst_node_id=node,
        )
        for node in node_ids
    ]
    answers: dict[int, tuple[int, int | None]] = {}
    for reply in grid.send_and_receive(queries, timeout=timeout):
        if reply.has_error():
            if strict:
                raise RuntimeError(
                    f"node {reply.metadata.src_node_id} failed: {reply.error.reason}"
                )
            continue
        info = reply.content.config_records["info"]
        size = int(info["num-train"]) if "num-train" in info else None  # type: ignore[arg-type]
        answers[reply.metadata.src_node_id] = (int(info["partition-id"]), size)  # type: ignore[arg-type]
    return answers


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
    scenario_doc = scenario.model_dump(mode="json")
    if ckpt is None:
        recorder = RunRecorder(run_dir, scenario_doc, token=token)
    else:
        recorder = RunRecorder.resume(run_dir, scenario_doc, ckpt.round, token=token)
    try:
        fed = scenario_federation(scenario)
        k = fed.spec.num_classes
        torch.manual_seed(scenario.seed)
        model = build_model(scenario.model, fed.spec)
        strategy = build_strategy(scenario)
        defense = ServerDefense(scenario, fed) if scenario.defense.name != "fedavg" else None
        cfg = scenario.train.early_stopping
        stopper = EarlyStopping(cfg) if cfg is not None else None
        if ckpt is None:
            summary = fed.summary()
            recorder.set_data(summary)
            recorder.initial(
                {"round": 0, **_eval_figures(evaluate(model, fed.x_test, fed.y_test, k))}
            )
        else:
            model.load_state_dict(ckpt.model)
            load_strategy_state(strategy, ckpt.strategy)
            torch.set_rng_state(ckpt.torch_rng)
            if stopper is not None:
                stopper.load_state_dict(ckpt.extra["early_stopping"])
            if defense is not None:
                defense.rule.load_state_dict(ckpt.extra.get("defense", {}))  # type: ignore[arg-type]
            log.info("resuming after round %d", ckpt.round)
        arrays = ArrayRecord(model.state_dict())

        sizes: dict[int, int] = {}
        nodes = discover_clients(grid, scenario, fed.spec, sizes)
        privacy = RunPrivacy(scenario, sizes)
        # SecAgg+ weights: example counts, or 1 each under client-level DP
        max_weight = 1.0 if scenario.privacy.dp.mode == "client" else max(sizes.values(), default=1)
        if ckpt is not None and "privacy" in ckpt.extra:
            privacy.load_state_dict(ckpt.extra["privacy"])
        first = 1 if ckpt is None else ckpt.round + 1
        continual = ContinualMetrics() if scenario.continual is not None else None
        stopped = False
        for rnd in range(first, scenario.train.rounds + 1):
            started = time.monotonic()
            rejoined = rejoin_clients(grid, scenario, fed.spec, nodes)
            for pid, node in rejoined.items():
                log.info("client %d rejoined as node %d", pid, node)
            arrays, round_figures = _train_round(
                grid, strategy, scenario, fed.spec, nodes, rnd, arrays, privacy, defense, model,
                max_weight,
            )  # fmt: skip
            if rejoined:
                round_figures["rejoined"] = sorted(rejoined)
            model.load_state_dict(arrays.to_torch_state_dict())
            # Re-derive the global record from the model: Flower's FedAdam/FedYogi return
            # float64 arrays, which float32 client replies would no longer match.
            arrays = ArrayRecord(model.state_dict())
            figures = {"round": rnd, **_eval_figures(evaluate(model, fed.x_test, fed.y_test, k))}
            figures.update(round_figures)
            if scenario.attack.kind == "backdoor":
                figures["backdoor_success"] = backdoor_success(
                    model, scenario.attack, fed.x_test, fed.y_test
                )
            if continual is not None:
                figures.update(_continual_figures(scenario, model, fed, rnd, continual))
            evaluation = scenario.adversarial.evaluation
            if evaluation is not None and (
                rnd % evaluation.every_n_rounds == 0 or rnd == scenario.train.rounds
            ):
                figures["robust_accuracy"] = scenario_robust_accuracy(scenario, model, fed)
            stopped = stopper is not None and stopper.update(rnd, figures, model)
            figures["seconds"] = round(time.monotonic() - started, 3)
            # metrics first: a crash in between re-runs this round on resume, never skips it
            recorder.add_round(figures)
            save_checkpoint(
                run_dir,
                Checkpoint(
                    round=rnd,
                    digest=scenario.resume_digest(),
                    model=model.state_dict(),
                    strategy=strategy_state(strategy),
                    extra=_loop_state(stopper, privacy, defense),
                    torch_rng=torch.get_rng_state(),
                ),
            )
            log.info("round %d: accuracy %.4f loss %.4f", rnd, figures["accuracy"], figures["loss"])
            if stopped:
                log.info("early stopping after round %d (best round %d)", rnd, stopper.best_round)
                break
        totals: dict[str, object] = {}
        if stopper is not None:
            model.load_state_dict(stopper.best_state)
            totals = {
                "stopped_early": stopped,
                "best_round": stopper.best_round,
                f"best_{stopper.cfg.metric}": stopper.best_value,
            }
        if scenario.adversarial.evaluation is not None:  # of the model the run keeps
            totals["robust_accuracy"] = scenario_robust_accuracy(scenario, model, fed)
        if scenario.attack.kind == "backdoor":  # of the model the run keeps
            totals["backdoor_success"] = backdoor_success(
                model, scenario.attack, fed.x_test, fed.y_test
            )
        if continual is not None:
            totals["continual"] = continual.to_dict()
        totals.update(privacy.final())
        if scenario.privacy.audit is not None:
            totals["audit"] = audit_model(scenario, model, totals.get("epsilon"))  # type: ignore[arg-type]
            log.info("canary audit: %s", totals["audit"])
        torch.save(model.state_dict(), run_dir / MODEL_FILE)
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


def scenario_robust_accuracy(
    scenario: Scenario, model: torch.nn.Module, fed: Federation
) -> dict[str, float]:
    """Robust accuracy as the scenario's ``adversarial.evaluation`` asks, on its test set."""
    cfg = scenario.adversarial.evaluation
    if cfg is None:
        return {}
    return robust_accuracy(
        model, fed.x_test, fed.y_test, cfg.attacks, cfg.eps, steps=cfg.steps, norm=cfg.norm,
        num_samples=cfg.num_samples, num_classes=fed.spec.num_classes, seed=scenario.seed,
    )  # fmt: skip


def _continual_figures(
    scenario: Scenario, model: torch.nn.Module, fed: Federation, rnd: int, metrics: ContinualMetrics
) -> dict[str, object]:
    """Accuracy on every task after this round; a row of the matrix when a task ends."""
    cl = scenario.continual
    assert cl is not None
    plan = schedule(cl)
    task = plan.task(rnd)
    row = task_accuracies(cl, scenario.seed, model, fed.x_test, fed.y_test, fed.spec.num_classes)
    if (plan.is_last_round_of_task(rnd) or rnd == scenario.train.rounds) and task == len(
        metrics.rows
    ):
        metrics.record(task, row)
    return {"task": task, "task_accuracy": row, "seen_accuracy": seen_mean(row, task)}


def _loop_state(
    stopper: EarlyStopping | None, privacy: RunPrivacy, defense: ServerDefense | None
) -> dict[str, object]:
    state: dict[str, object] = {}
    if stopper is not None:
        state["early_stopping"] = stopper.state_dict()
    if privacy.enabled:
        state["privacy"] = privacy.state_dict()
    if defense is not None:
        state["defense"] = defense.rule.state_dict()
    return state


def _train_round(
    grid: Grid,
    strategy: Strategy,
    scenario: Scenario,
    spec: InputSpec,
    nodes: dict[int, int],
    rnd: int,
    arrays: ArrayRecord,
    privacy: RunPrivacy,
    defense: ServerDefense | None,
    model: torch.nn.Module,
    max_weight: float,
) -> tuple[ArrayRecord, dict[str, object]]:
    """Sample, send the recipe, screen replies, defend, aggregate; return new weights and
    figures. ``model`` holds the round's global weights (FLTrust trains a copy)."""
    started = time.monotonic()
    chosen = round_clients(scenario, rnd)
    sampled = {nodes[pid]: pid for pid in chosen}
    config = recipe_config(scenario, spec)
    messages = strategy.configure_train(rnd, arrays, config, _SampledGrid(sampled))  # type: ignore[arg-type]
    if privacy.enabled:
        messages = [_with_config(m, privacy, sampled) for m in messages]
    robust: dict[str, object] = {}
    secure: dict[str, object] = {}
    if scenario.secagg_enabled():  # the server sees the masked sum only
        outcome = secagg_round(grid, scenario, rnd, messages, arrays, max_weight)
        accepted = [outcome.trained[n] for n in outcome.contributors]
        trained = list(outcome.trained.values())
        dropped, refused, secure = outcome.dropped, outcome.refused, outcome.figures
        to_aggregate = outcome.replies
        if secure["failure"]:
            log.warning("round %d: SecAgg+ produced no aggregate: %s", rnd, secure["failure"])
    else:
        replies = grid.send_and_receive(messages, timeout=scenario.simulation.timeout)
        accepted, dropped, refused = screen_replies(replies, arrays, sampled, sent=messages)
        # the simulated colluding attacker rewrites its clients' replies (attack side)
        accepted = collude(scenario, rnd, accepted, arrays, sampled)
        trained = accepted
        to_aggregate = accepted
        if defense is not None and accepted:
            to_aggregate, robust = defense.apply(rnd, accepted, arrays, sampled, model)
    new_arrays = None
    if to_aggregate:
        set_aggregated_count(strategy, len(to_aggregate))
        privacy.seed_noise(rnd)  # Flower's DP noise draws from np.random
        new_arrays, _ = strategy.aggregate_train(rnd, to_aggregate)
        if new_arrays is not None:
            arrays = new_arrays
    clients = [_client_figures(msg, sampled) for msg in accepted]
    train = scenario.train
    figures: dict[str, object] = {
        "lr": round_lr(train.lr_schedule, train.optimizer.lr, rnd, train.rounds),
        "sampled": len(chosen),
        "train_seconds": round(time.monotonic() - started, 3),  # send to aggregate
        "aggregated": len(accepted) if new_arrays is not None else 0,
        "dropped": dict(sorted(dropped.items())),
        "train_loss": _weighted(clients, "train_loss"),
        "val_accuracy": _weighted(clients, "val_accuracy"),
        "clients": clients,
    }
    if scenario.attack.kind != "none":
        bad = malicious_clients(scenario)
        participants = [sampled[m.metadata.src_node_id] for m in accepted]
        attackers = (
            sorted(p for p in participants if p in bad)
            if rnd >= scenario.attack.start_round
            else []
        )
        figures["malicious"] = attackers
        if robust and defense is not None and defense.rule.selects_clients:
            flagged: list[int] = robust["flagged"]  # type: ignore[assignment]
            robust.update(detection(flagged, attackers))
    if robust:
        figures["defense"] = robust
    if secure:
        figures["secure_aggregation"] = secure
    by_client = {sampled[m.metadata.src_node_id]: m for m in trained}
    figures.update(
        privacy.record_round(
            rnd, chosen, {sampled[n] for n in refused}, by_client, new_arrays is not None
        )
    )
    return arrays, figures


def _with_config(msg: Message, privacy: RunPrivacy, sampled: dict[int, int]) -> Message:
    """A copy of ``msg`` whose recipe carries its client's own DP settings.

    Flower's strategies send one shared RecordDict to every node; per-client settings
    need a message of their own.
    """
    content = msg.content
    node = msg.metadata.dst_node_id
    config = privacy.client_config(sampled[node], content.config_records["config"])
    record = RecordDict({"arrays": content.array_records["arrays"], "config": config})
    return Message(content=record, message_type=msg.metadata.message_type, dst_node_id=node)


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
    }
    if "epsilon" in metrics:  # the client's own accountant, beside the server's ledger
        figures["epsilon"] = float(metrics["epsilon"])  # type: ignore[arg-type]
    return figures


def _weighted(clients: list[dict[str, float | int]], key: str) -> float | None:
    pairs = [(c[key], c["num_examples"]) for c in clients if c[key] == c[key]]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None
