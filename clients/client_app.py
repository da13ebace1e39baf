"""fedrobust's Flower ClientApp (message API).

The client holds no copy of the scenario: each message carries the round's recipe (the
validated scenario as JSON, and the data's input spec) in its ConfigRecord. The node's
identity and data come from ``node_config``:

- ``partition-id``: this client's index in the federation, 0..num_clients-1 (required);
- ``num-partitions``: checked against the scenario's ``data.partition.num_clients``;
- ``data-path``: an npz file of the device's own data (see ``fedrobust.data.device``);
  without it the client trains on its simulation-style partition of the scenario's
  ``data`` section, built with the scenario's seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, compute_clip_model_update

from fedrobust.adversarial.training import AdversarialExamples, Trades
from fedrobust.continual import EWC, LwF, Replay, ReservoirBuffer, TaskMask, fisher_diagonal
from fedrobust.continual.ewc import snapshot
from fedrobust.continual.federated import (
    client_offset,
    schedule,
    task_classes,
    task_data,
    task_model,
)
from fedrobust.data import ClientData
from fedrobust.data.device import load_device_data
from fedrobust.models.build import build_model
from fedrobust.models.registry import InputSpec
from fedrobust.privacy.canaries import scenario_federation
from fedrobust.privacy.client_dp import CLIENT_CLIPPING, UNIFORM_WEIGHT, client_dp_mod
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.privacy.ledger import LedgerEntry, epsilon
from fedrobust.privacy.plan import round_steps
from fedrobust.recipe import read_recipe
from fedrobust.robust.malicious import attacking
from fedrobust.robust.poisoning import poison_data, poison_update
from fedrobust.robust.updates import apply_delta, flat_delta, float_keys
from fedrobust.scenario import AdversarialTrainingConfig, ContinualConfig, Scenario
from fedrobust.secagg import SecAggClient, SecAggParams
from fedrobust.secagg.records import from_records, to_records
from fedrobust.train import (
    Augment,
    L1Penalty,
    ProximalTerm,
    TrainPlugin,
    evaluate,
    local_train,
    round_lr,
)

app = ClientApp(mods=[client_dp_mod])
LEDGER_KEY = "dp-ledger"
SECAGG_STATE = "secagg-state"
CL_TASK = "continual-task"  # the task this client last trained
CL_BUFFER = "continual-replay"
CL_EWC = "continual-ewc"
CL_OLD = "continual-lwf-model"  # the global model at the start of the current task


def partition_id(context: Context) -> int:
    """This node's partition id from its node_config."""
    if "partition-id" not in context.node_config:
        raise ValueError("node_config has no 'partition-id'")
    return int(context.node_config["partition-id"])


def load_client_data(scenario: Scenario, spec: InputSpec, context: Context) -> ClientData:
    """This node's data: its npz (``data-path``) or its share of ``scenario.data``."""
    pid = partition_id(context)
    expected = scenario.data.partition.num_clients
    declared = int(context.node_config.get("num-partitions", expected))
    if declared != expected:
        raise ValueError(
            f"node_config num-partitions={declared} but the scenario has {expected} clients"
        )
    if not 0 <= pid < expected:
        raise ValueError(f"partition-id {pid} outside 0..{expected - 1}")
    if "data-path" in context.node_config:
        if scenario.privacy.audit is not None:
            raise ValueError("privacy.audit plants canaries in simulated partitions only")
        path = Path(str(context.node_config["data-path"])).expanduser()
        return load_device_data(path, spec, scenario.data.val_fraction, scenario.seed + pid)
    return scenario_federation(scenario).clients[pid]


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server who this node is (and, given a recipe, how much data it holds)."""
    info = ConfigRecord({"partition-id": partition_id(context)})
    config = msg.content.config_records.get("config")
    if config is not None and "scenario" in config:
        scenario, spec = read_recipe(config)
        info["num-train"] = len(load_client_data(scenario, spec, context).y_train)
    return Message(content=RecordDict({"info": info}), reply_to=msg)


def adversarial_plugins(
    cfg: AdversarialTrainingConfig, rnd: int, num_classes: int, seed: int
) -> tuple[TrainPlugin, ...]:
    """The adversarial-training plugin for this round (none before ``start_round``)."""
    if cfg.method == "none" or rnd < cfg.start_round:
        return ()
    if cfg.method == "trades":
        return (Trades(cfg.eps, cfg.step_size(), cfg.steps, cfg.beta),)
    attack = "ffgsm" if cfg.method == "fgsm_rs" else "pgdl2" if cfg.norm == "l2" else "pgd"
    steps = 1 if cfg.method == "fgsm_rs" else cfg.steps
    return (
        AdversarialExamples(attack, cfg.eps, cfg.step_size(), steps, cfg.ratio, num_classes, seed),
    )


def round_plugins(
    scenario: Scenario, config: ConfigRecord, seed: int, rnd: int, num_classes: int
) -> tuple[TrainPlugin, ...]:
    """The loop plugins this round's recipe asks for (augmentation before attacks)."""
    plugins: list[TrainPlugin] = []
    if scenario.data.augment:
        plugins.append(Augment(scenario.data.augment, seed))
    plugins.extend(adversarial_plugins(scenario.adversarial.training, rnd, num_classes, seed))
    if "proximal-mu" in config:
        plugins.append(ProximalTerm(float(config["proximal-mu"])))  # type: ignore[arg-type]
    if scenario.train.l1 > 0:
        plugins.append(L1Penalty(scenario.train.l1))
    return tuple(plugins)


def advance_tasks(
    cl: ContinualConfig,
    seed: int,
    context: Context,
    task: int,
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    round_seed: int,
) -> None:
    """Close the tasks this client finished since it last trained (it may have sat out
    their last rounds): add their data to the replay buffer, fold their Fisher (at the
    global model now received) into EWC, keep that model as LwF's teacher."""
    record = context.state.config_records.get(CL_TASK)
    last = int(record["task"]) if record is not None else -1  # type: ignore[arg-type]
    if task <= last:
        return
    methods = cl.methods()
    finished = range(max(last, 0), task)  # the last trained one and any skipped
    if "replay" in methods and len(finished):
        buffer = load_buffer(cl, context, seed)
        for t in finished:
            xt, yt = task_data(cl, seed, x, y, t)
            buffer.add(torch.as_tensor(xt), torch.as_tensor(yt))
        context.state.array_records[CL_BUFFER] = ArrayRecord(buffer.state_dict())
    if "ewc" in methods and len(finished):
        ewc = load_ewc(cl, context)
        for t in finished:
            xt, yt = task_data(cl, seed, x, y, t)
            if len(yt) == 0:
                continue
            fisher = fisher_diagonal(task_model(cl, model, t), xt, yt,
                                     samples=cl.ewc.fisher_samples, seed=round_seed)  # fmt: skip
            if ewc is None:
                ewc = EWC(fisher, snapshot(model), cl.ewc.lambda_)
            else:
                ewc.consolidate(fisher, snapshot(model), cl.ewc.online)
        if ewc is not None:
            context.state.array_records[CL_EWC] = ArrayRecord(ewc.state_dict())
    if "lwf" in methods and task > 0:
        context.state.array_records[CL_OLD] = ArrayRecord(model.state_dict())
    context.state.config_records[CL_TASK] = ConfigRecord({"task": task})


def load_buffer(cl: ContinualConfig, context: Context, seed: int) -> ReservoirBuffer:
    """This client's replay buffer (empty before its first task ends)."""
    buffer = ReservoirBuffer(cl.replay.buffer_size, seed)
    record = context.state.array_records.get(CL_BUFFER)
    if record is not None:
        buffer.load_state_dict(record.to_torch_state_dict())
    return buffer


def load_ewc(cl: ContinualConfig, context: Context) -> EWC | None:
    """This client's EWC penalty (``None`` before its first task ends)."""
    record = context.state.array_records.get(CL_EWC)
    if record is None:
        return None
    ewc = EWC([], [], cl.ewc.lambda_)
    ewc.load_state_dict(record.to_torch_state_dict())
    return ewc


def continual_plugins(
    cl: ContinualConfig,
    scenario: Scenario,
    context: Context,
    task: int,
    spec: InputSpec,
    seed: int,
) -> tuple[tuple[TrainPlugin, ...], tuple[TrainPlugin, ...]]:
    """Plugins before the round's others (task head, replay) and after them (EWC, LwF)."""
    first: list[TrainPlugin] = []
    last: list[TrainPlugin] = []
    methods = cl.methods()
    if cl.setting == "task_incremental":
        first.append(TaskMask(task_classes(cl, task) or []))
    if "replay" in methods:
        buffer = load_buffer(cl, context, scenario.seed)
        if len(buffer):
            first.append(Replay(buffer, cl.replay.ratio, seed))
    if "ewc" in methods and (ewc := load_ewc(cl, context)) is not None:
        last.append(ewc)
    record = context.state.array_records.get(CL_OLD)
    if "lwf" in methods and task > 0 and record is not None:
        old = build_model(scenario.model, spec)
        old.load_state_dict(record.to_torch_state_dict())
        seen = None if cl.tasks is None else [c for g in cl.tasks[:task] for c in g]
        last.append(LwF(old, cl.lwf.temperature, cl.lwf.alpha, classes=seen))
    return tuple(first), tuple(last)


def dp_recipe(scenario: Scenario, config: ConfigRecord, context: Context) -> DPSGDRecipe | None:
    """This round's DP-SGD recipe, with the client's past releases (``None`` without DP).

    The client's own ledger in ``context.state`` is authoritative; the server's copy in
    the recipe (``dp-history``) fills in after a restart that lost the client's state.
    """
    dp = scenario.privacy.dp
    if dp.mode != "sample":
        return None
    own = load_ledger(context)
    sent = [LedgerEntry.from_dict(e) for e in json.loads(str(config.get("dp-history", "[]")))]
    past = own if sum(e.steps for e in own) >= sum(e.steps for e in sent) else sent
    return DPSGDRecipe(
        noise_multiplier=float(config["dp-noise-multiplier"]),
        max_grad_norm=dp.max_grad_norm,
        accountant=dp.accountant,
        poisson_sampling=dp.poisson_sampling,
        grad_sample_mode=dp.grad_sample_mode,
        max_physical_batch_size=dp.max_physical_batch_size,
        delta=dp.delta,
        past=tuple(past),
        reproducible=dp.reproducible,
    )


def load_ledger(context: Context) -> list[LedgerEntry]:
    """This client's DP releases in earlier rounds of this run."""
    record = context.state.config_records.get(LEDGER_KEY)
    if record is None:
        return []
    return [LedgerEntry.from_dict(e) for e in json.loads(str(record["entries"]))]


def save_ledger(context: Context, entries: list[LedgerEntry]) -> None:
    """Keep this client's releases across rounds (the ClientApp is rebuilt each round)."""
    doc = json.dumps([e.to_dict() for e in entries])
    context.state.config_records[LEDGER_KEY] = ConfigRecord({"entries": doc})


def refusal(msg: Message, reason: str, **figures: float) -> Message:
    """A reply that declines the round, with the reason the server counts."""
    status = ConfigRecord({"refused": reason, **figures})
    return Message(content=RecordDict({"status": status}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on local data with the round's recipe."""
    config = msg.content.config_records["config"]
    scenario, spec = read_recipe(config)
    server_round = int(config["server-round"])
    torch.set_num_threads(scenario.simulation.cpus_per_client)
    data = load_client_data(scenario, spec, context)
    train_cfg = scenario.train

    dp = dp_recipe(scenario, config, context)
    if dp is not None and (budget := scenario.privacy.dp.budget) is not None:
        rate, steps = round_steps(len(data.y_train), train_cfg, dp.poisson_sampling)
        planned = LedgerEntry(dp.noise_multiplier, rate, steps, server_round)
        after = epsilon([*dp.past, planned], dp.delta, dp.accountant)
        if after > budget + 1e-9:
            spent = epsilon(list(dp.past), dp.delta, dp.accountant)
            return refusal(msg, "budget_exhausted", epsilon=spent, **{"epsilon-next": after})

    global_arrays = msg.content.array_records["arrays"]
    model = build_model(scenario.model, spec)
    model.load_state_dict(global_arrays.to_torch_state_dict())
    seed = scenario.seed * 1_000_003 + server_round * 10_007 + partition_id(context)
    malicious = attacking(scenario, partition_id(context), server_round)
    x, y = data.x_train, data.y_train
    if malicious:  # data poisoning (label_flip, backdoor) on this client's own data
        x, y = poison_data(scenario.attack, x, y, spec.num_classes, seed)
    plugins = round_plugins(scenario, config, seed, server_round, spec.num_classes)
    if scenario.continual is not None:  # this round's task, and the method's plugins
        cl = scenario.continual
        task = schedule(cl).task(server_round, client_offset(scenario, partition_id(context)))
        advance_tasks(cl, scenario.seed, context, task, model, x, y, seed)
        first, last = continual_plugins(cl, scenario, context, task, spec, seed)
        plugins = (*first, *plugins, *last)
        x, y = task_data(cl, scenario.seed, x, y, task)
    result = local_train(
        model,
        x,
        y,
        train=train_cfg,
        num_classes=spec.num_classes,
        seed=seed,
        lr=round_lr(train_cfg.lr_schedule, train_cfg.optimizer.lr, server_round, train_cfg.rounds),
        plugins=plugins,
        dp=dp,
        rnd=server_round,
    )
    val = evaluate(model, data.x_val, data.y_val, spec.num_classes)
    metrics = MetricRecord(
        {
            "num-examples": result.num_examples,
            "steps": result.steps,
            "train-loss": result.loss,
            "train-accuracy": result.accuracy,
            "val-loss": val.loss,
            "val-accuracy": val.accuracy,
        }
    )
    if scenario.privacy.dp.mode == "client":
        metrics[UNIFORM_WEIGHT] = 1  # DP-FedAvg's noise assumes an unweighted average
    if dp is not None and result.privacy is not None:
        save_ledger(context, [*dp.past, result.privacy])
        metrics["epsilon"] = float(result.epsilon or 0.0)
        metrics["dp-noise-multiplier"] = result.privacy.noise_multiplier
        metrics["dp-sample-rate"] = result.privacy.sample_rate
        metrics["dp-steps"] = result.privacy.steps
    weights = ArrayRecord(model.state_dict())
    if malicious:  # update poisoning (sign_flip, gaussian, scaling, backdoor's boost)
        delta = flat_delta(weights, global_arrays)
        weights = apply_delta(global_arrays, poison_update(scenario.attack, delta, seed))
    content = RecordDict({"arrays": weights, "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.train("secagg")
def secagg(msg: Message, context: Context) -> Message:
    """One SecAgg+ stage (``privacy.secure_aggregation``).

    setup and share_keys exchange keys and Shamir shares; collect_masked_vectors carries
    the round's recipe: the client trains exactly as :func:`train` does, takes its update
    (weights minus global weights; clipped to the round's norm under client-level DP),
    and sends it only masked, with its training metrics; unmask sends the shares that
    remove the masks. The protocol state lives in ``context.state`` between stages.
    """
    stage_msg = from_records(msg.content)
    stage = str(stage_msg["stage"])
    if stage == "setup":
        client = SecAggClient(context.node_id, SecAggParams.from_dict(stage_msg))
        reply = client.setup(stage_msg)
        _save_secagg(context, client)
        return Message(content=to_records(reply), reply_to=msg)
    state = context.state.config_records.get(SECAGG_STATE)
    if state is None:
        raise RuntimeError(f"SecAgg+ stage {stage} without a setup on this node")
    client = SecAggClient.from_state_dict(state)
    content = RecordDict()
    if stage == "share_keys":
        reply = client.share_keys(stage_msg)
    elif stage == "collect_masked_vectors":
        trained = train(msg, context)
        if "status" in trained.content.config_records:  # refused (budget): drops out here
            return trained
        update, weight, metrics = _secagg_update(msg, trained)
        reply = client.collect_masked_vectors(stage_msg, update, weight)
        content["metrics"] = metrics
    elif stage == "unmask":
        reply = client.unmask(stage_msg)
    else:
        raise ValueError(f"unknown SecAgg+ stage '{stage}'")
    _save_secagg(context, client)
    return Message(content=to_records(reply, content), reply_to=msg)


def _secagg_update(msg: Message, trained: Message) -> tuple[list[np.ndarray], float, MetricRecord]:
    """The update to mask, its weight and the training metrics of a ``train`` reply."""
    global_arrays = msg.content.array_records["arrays"]
    weights = trained.content.array_records["arrays"]
    metrics = trained.content.metric_records["metrics"]
    keys = float_keys(global_arrays)
    new = [weights[k].numpy().astype(np.float64) for k in keys]
    old = [global_arrays[k].numpy().astype(np.float64) for k in keys]
    config = msg.content.config_records["config"]
    if config.get(CLIENT_CLIPPING) == "fixed":  # what fixedclipping_mod does to a reply
        compute_clip_model_update(new, old, float(config[KEY_CLIPPING_NORM]))  # type: ignore[arg-type]
    update = [n - o for n, o in zip(new, old, strict=True)]
    weight = 1.0 if UNIFORM_WEIGHT in metrics else float(metrics["num-examples"])  # type: ignore[arg-type]
    return update, weight, metrics


def _save_secagg(context: Context, client: SecAggClient) -> None:
    """Keep the protocol state for the next stage (the ClientApp is rebuilt per message)."""
    context.state.config_records[SECAGG_STATE] = ConfigRecord(client.state_dict())


@app.evaluate()
def evaluate_global(msg: Message, context: Context) -> Message:
    """Evaluate the received global model on the local validation split."""
    scenario, spec = read_recipe(msg.content.config_records["config"])
    data = load_client_data(scenario, spec, context)
    model = build_model(scenario.model, spec)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    val = evaluate(model, data.x_val, data.y_val, spec.num_classes)
    metrics = MetricRecord(
        {"num-examples": len(data.y_val), "val-loss": val.loss, "val-accuracy": val.accuracy}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
