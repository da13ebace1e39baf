"""fedrobust's Flower ClientApp (message API).

The client holds no copy of the scenario: each training message carries the round's
recipe (the validated scenario as JSON) in its ConfigRecord. The node's identity and
data come from ``node_config``: ``partition-id`` and ``num-partitions`` (simulation-style
data, built from the recipe's ``data`` section with the scenario seed).
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedrobust.data import ClientData, build_federation
from fedrobust.models.build import build_model
from fedrobust.scenario import Scenario
from fedrobust.train import (
    Augment,
    L1Penalty,
    ProximalTerm,
    TrainPlugin,
    evaluate,
    local_train,
    round_lr,
)

app = ClientApp()


def partition_id(context: Context) -> int:
    """This node's partition id from its node_config."""
    if "partition-id" not in context.node_config:
        raise ValueError("node_config has no 'partition-id'")
    return int(context.node_config["partition-id"])


def load_client_data(scenario: Scenario, context: Context) -> ClientData:
    """This node's share of the federation described by ``scenario.data``."""
    pid = partition_id(context)
    expected = scenario.data.partition.num_clients
    declared = int(context.node_config.get("num-partitions", expected))
    if declared != expected:
        raise ValueError(
            f"node_config num-partitions={declared} but the scenario has {expected} clients"
        )
    if not 0 <= pid < expected:
        raise ValueError(f"partition-id {pid} outside 0..{expected - 1}")
    return build_federation(scenario.data, scenario.seed).clients[pid]


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server who this node is."""
    info = ConfigRecord({"partition-id": partition_id(context)})
    return Message(content=RecordDict({"info": info}), reply_to=msg)


def round_plugins(scenario: Scenario, config: ConfigRecord, seed: int) -> tuple[TrainPlugin, ...]:
    """The loop plugins this round's recipe asks for."""
    plugins: list[TrainPlugin] = []
    if scenario.data.augment:
        plugins.append(Augment(scenario.data.augment, seed))
    if "proximal-mu" in config:
        plugins.append(ProximalTerm(float(config["proximal-mu"])))
    if scenario.train.l1 > 0:
        plugins.append(L1Penalty(scenario.train.l1))
    return tuple(plugins)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on local data with the round's recipe."""
    config = msg.content.config_records["config"]
    scenario = Scenario.model_validate_json(str(config["scenario"]))
    server_round = int(config["server-round"])
    torch.set_num_threads(scenario.simulation.cpus_per_client)
    data = load_client_data(scenario, context)
    fed = build_federation(scenario.data, scenario.seed)

    model = build_model(scenario.model, fed.spec)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    seed = scenario.seed * 1_000_003 + server_round * 10_007 + partition_id(context)
    train_cfg = scenario.train
    result = local_train(
        model,
        data.x_train,
        data.y_train,
        train=train_cfg,
        num_classes=fed.spec.num_classes,
        seed=seed,
        lr=round_lr(train_cfg.lr_schedule, train_cfg.optimizer.lr, server_round, train_cfg.rounds),
        plugins=round_plugins(scenario, config, seed),
    )
    val = evaluate(model, data.x_val, data.y_val, fed.spec.num_classes)
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
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_global(msg: Message, context: Context) -> Message:
    """Evaluate the received global model on the local validation split."""
    config = msg.content.config_records["config"]
    scenario = Scenario.model_validate_json(str(config["scenario"]))
    data = load_client_data(scenario, context)
    fed = build_federation(scenario.data, scenario.seed)
    model = build_model(scenario.model, fed.spec)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    val = evaluate(model, data.x_val, data.y_val, fed.spec.num_classes)
    metrics = MetricRecord(
        {"num-examples": len(data.y_val), "val-loss": val.loss, "val-accuracy": val.accuracy}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
