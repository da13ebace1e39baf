"""One client's local round, shared by the plain ``train`` handler and SecAgg+'s
training stage: data, hooks, training, validation, the reply's weights and metrics; and
the ``evaluate`` message's measurement on the client's local test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict

from fedrobust.data import ClientData
from fedrobust.data.cache import cache_dir, cached_partition, partition_key
from fedrobust.data.device import load_device_data
from fedrobust.federation.client_hooks import ClientHook, ClientJob, LocalPlan, Refusal
from fedrobust.federation.records import Record, replace_records
from fedrobust.federation.registry import client_hooks
from fedrobust.models.build import build_model
from fedrobust.models.registry import InputSpec
from fedrobust.privacy.canaries import scenario_federation
from fedrobust.privacy.policy import ClientPolicy
from fedrobust.recipe import read_recipe
from fedrobust.scenario import Scenario
from fedrobust.seeds import client_seed
from fedrobust.train import Augment, L1Penalty, ProximalTerm, evaluate, local_train, round_lr
from fedrobust.train.local import EvalResult


@dataclass(frozen=True)
class LocalResult:
    """A local round's outcome: the records to send (``arrays``, the trained weights,
    and any a hook added) and the metrics; or a refusal."""

    records: dict[str, Record] = field(default_factory=dict)
    metrics: MetricRecord | None = None
    refusal: Refusal | None = None

    @property
    def weights(self) -> ArrayRecord:
        """The trained weights."""
        return self.records["arrays"]  # type: ignore[return-value]

    def content(self) -> RecordDict:
        """The reply's records: every record to send, and ``metrics``."""
        assert self.metrics is not None
        return replace_records(RecordDict(), **self.records, metrics=self.metrics)


def partition_id(context: Context) -> int:
    """This node's partition id from its node_config."""
    if "partition-id" not in context.node_config:
        raise ValueError("node_config has no 'partition-id'")
    return int(context.node_config["partition-id"])


def load_client_data(scenario: Scenario, spec: InputSpec, context: Context) -> ClientData:
    """This node's data: its npz (``data-path``) or its share of ``scenario.data``.

    The share is read from the node's partition cache when a sound copy is there, else
    built and cached (:mod:`fedrobust.data.cache`): Flower starts a new process per
    message, and the federation need not be rebuilt for each.
    """
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
        data = scenario.data
        return load_device_data(
            path, spec, data.val_fraction, scenario.seed + pid, data.local_test_fraction
        )
    audit = scenario.privacy.audit
    extra = None if audit is None else {"audit": audit.model_dump(mode="json")}
    key = partition_key(scenario.data, scenario.seed, pid, extra)
    return cached_partition(
        cache_dir(context.node_config), key, lambda: scenario_federation(scenario).clients[pid]
    )


def base_plan(job: ClientJob, x: object, y: object) -> LocalPlan:
    """The plan before any hook: the data, augmentation, FedProx's and L1's terms."""
    scenario = job.scenario
    batch = (Augment(scenario.data.augment, job.seed),) if scenario.data.augment else ()
    terms = []
    if "proximal-mu" in job.config:
        terms.append(ProximalTerm(float(job.config["proximal-mu"])))  # type: ignore[arg-type]
    if scenario.train.l1 > 0:
        terms.append(L1Penalty(scenario.train.l1))
    return LocalPlan(x=x, y=y, batch=batch, terms=tuple(terms))  # type: ignore[arg-type]


def client_job(
    content: RecordDict, context: Context, *, secure: bool = False, evaluating: bool = False
) -> tuple[ClientJob, ClientData]:
    """The message's job (recipe, round, who this client is, its seed and policy) and the
    client's data; sets torch's threads to the recipe's CPUs per client."""
    config = content.config_records["config"]
    scenario, spec = read_recipe(config)
    rnd = int(config["server-round"])  # type: ignore[arg-type]
    torch.set_num_threads(scenario.simulation.cpus_per_client)
    data = load_client_data(scenario, spec, context)
    pid = partition_id(context)
    policy = ClientPolicy.from_node_config(context.node_config)
    seed = client_seed(scenario.seed, rnd, pid)
    job = ClientJob(scenario, spec, config, content, rnd, pid, seed, policy, secure, evaluating)
    return job, data


def local_round(content: RecordDict, context: Context, secure: bool = False) -> LocalResult:
    """Train the received global model on this client's data with the round's recipe.

    Parameters
    ----------
    content : RecordDict
        The message's records: ``arrays`` (the global model) and ``config`` (the recipe).
    context : Context
        The ClientApp's context: ``node_config`` (identity, data, the owner's privacy
        policy) and ``state`` (what the hooks keep between rounds).
    secure : bool
        The update leaves masked (SecAgg+'s training stage).
    """
    job, data = client_job(content, context, secure=secure)
    scenario, spec, rnd = job.scenario, job.spec, job.rnd
    hooks = client_hooks(scenario)
    for hook in hooks:
        hook.load_state_dict(_held(context, hook))
    for hook in hooks:
        if (refusal := hook.refuse(job, len(data.y_train))) is not None:
            return LocalResult(refusal=refusal)

    global_arrays = content.array_records["arrays"]
    model = build_model(scenario.model, spec)
    model.load_state_dict(global_arrays.to_torch_state_dict())
    plan = base_plan(job, data.x_train, data.y_train)
    for hook in hooks:
        plan = hook.plan(job, model, plan)
    train = scenario.train
    result = local_train(
        model, plan.x, plan.y, train=train, num_classes=spec.num_classes, seed=job.seed,
        lr=round_lr(train.lr_schedule, train.optimizer.lr, rnd, train.rounds),
        plugins=plan.plugins(), dp=plan.dp, rnd=rnd,
    )  # fmt: skip
    val = evaluate(model, data.x_val, data.y_val, spec.num_classes, device=train.device)
    personal = _personal(job, hooks, model, data)
    metrics: dict[str, float | int] = {
        "round": rnd,  # the server drops a reply that echoes another round (a replay)
        "num-examples": result.num_examples,
        "steps": result.steps,
        "train-loss": result.loss,
        "train-accuracy": result.accuracy,
        "val-loss": val.loss,
        "val-accuracy": val.accuracy,
        "val-balanced-accuracy": val.balanced_accuracy,
    }
    if data.has_local_test:  # the received global model, and the personal one
        received = build_model(scenario.model, spec)
        received.load_state_dict(global_arrays.to_torch_state_dict())
        metrics.update(_local_test(received, personal, data, spec.num_classes, train.device))
    records: dict[str, Record] = {"arrays": ArrayRecord(model.state_dict())}
    for hook in hooks:
        metrics = hook.metrics(job, result, metrics)
        records = hook.reply(job, records, global_arrays)
    for hook in hooks:
        _keep(context, hook)
    return LocalResult(records=records, metrics=MetricRecord(metrics))  # type: ignore[arg-type]


def local_evaluation(content: RecordDict, context: Context) -> MetricRecord:
    """Measure the received global model, and the client's personal model, on the
    client's local test split (an ``evaluate`` message; nothing is trained that leaves
    the client, no state is kept).

    Returns the metrics: ``round``, ``num-test`` (0 without a local test split: nothing
    else), ``local-accuracy`` and, with a personal model, ``personal-accuracy``.
    """
    job, data = client_job(content, context, evaluating=True)
    scenario, spec = job.scenario, job.spec
    figures: dict[str, float | int] = {"round": job.rnd, "num-test": 0}
    if not data.has_local_test:
        return MetricRecord(figures)  # type: ignore[arg-type]
    hooks = client_hooks(scenario)
    for hook in hooks:
        hook.load_state_dict(_held(context, hook))
    model = build_model(scenario.model, spec)
    model.load_state_dict(content.array_records["arrays"].to_torch_state_dict())
    personal = _personal(job, hooks, model, data)
    figures.update(_local_test(model, personal, data, spec.num_classes, scenario.train.device))
    return MetricRecord(figures)  # type: ignore[arg-type]


def _personal(
    job: ClientJob, hooks: list[ClientHook], model: torch.nn.Module, data: ClientData
) -> torch.nn.Module | None:
    """The personal model a hook builds (personalization), or ``None``."""
    personal = None
    for hook in hooks:
        personal = hook.personal(job, model, data) or personal
    return personal


def _local_test(
    global_model: torch.nn.Module,
    personal: torch.nn.Module | None,
    data: ClientData,
    num_classes: int,
    device: str,
) -> dict[str, float | int]:
    """Accuracy of the global (and personal) model on the local test split, on
    ``device`` (``train.device``)."""
    assert data.x_test is not None and data.y_test is not None

    def score(model: torch.nn.Module) -> EvalResult:
        return evaluate(model, data.x_test, data.y_test, num_classes, device=device)  # type: ignore[arg-type]

    figures: dict[str, float | int] = {
        "num-test": len(data.y_test),
        "local-accuracy": score(global_model).accuracy,
    }
    if personal is not None:
        figures["personal-accuracy"] = score(personal).accuracy
    return figures


def _held(context: Context, hook: ClientHook) -> dict[str, Record]:
    """The records of ``hook.state_keys`` this client holds in ``context.state``."""
    return {key: context.state[key] for key in hook.state_keys if key in context.state}


def _keep(context: Context, hook: ClientHook) -> None:
    """Store the records ``hook`` keeps for the next round in ``context.state``."""
    for key, record in hook.state_dict().items():
        if key not in hook.state_keys:
            raise KeyError(f"{type(hook).__name__} keeps '{key}', not in its state_keys")
        context.state[key] = record
