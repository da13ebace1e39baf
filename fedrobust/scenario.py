"""Scenario schema: one YAML file describes a whole experiment.

Every section is one pydantic model; unknown keys are refused at every level. Later
sections (``privacy``, ``attack``, ``defense``, ``adversarial``, ``continual``) each add
one model here, owned by their module.

``load_scenario`` turns any problem into a :class:`FedrobustError` whose ``where`` is
the dotted path of the offending field (``data.partition.alpha``), or the file and
line for YAML syntax errors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from fedrobust.errors import FedrobustError

if TYPE_CHECKING:
    from fedrobust.secagg.config import SecAggParams

BUNDLED_DATASETS = ("mnist-5k", "digits")


class Section(BaseModel):
    """Base of every scenario section: strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    def applicable(self) -> set[str]:
        """Fields that mean something for this section's choice (kind, name, ...)."""
        return set(type(self).model_fields)

    def check_applicable(self, choice: str) -> None:
        """Refuse a field the user set that does not apply to ``choice``."""
        for name in sorted(self.model_fields_set - self.applicable()):
            raise _field_error(name, f"does not apply to {choice}")

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Dumps leave out fields that do not apply, so a resolved scenario validates again.
        keep = self.applicable()
        return {k: v for k, v in handler(self).items() if k in keep}


# --------------------------------------------------------------------------- data

PARTITION_KINDS = (
    "iid",
    "dirichlet",
    "inner_dirichlet",
    "pathological",
    "shard",
    "exponential",
    "linear",
    "square",
    "size",
)

# Which optional partition fields each kind reads; setting another is an error.
PARTITION_FIELDS: dict[str, set[str]] = {
    "iid": set(),
    "dirichlet": {"alpha", "min_partition_size", "self_balancing"},
    "inner_dirichlet": {"alpha", "sizes"},
    "pathological": {"classes_per_client", "class_assignment"},
    "shard": {"shards_per_client", "shard_size"},
    "exponential": set(),
    "linear": set(),
    "square": set(),
    "size": {"sizes"},
}
PARTITION_COMMON = {"kind", "num_clients"}


class PartitionConfig(Section):
    """How the training pool is split across clients (flwr-datasets partitioners).

    Parameters
    ----------
    kind : str
        iid | dirichlet | inner_dirichlet | pathological | shard | exponential |
        linear | square | size.
    num_clients : int
        Number of clients (partitions).
    alpha : float
        Dirichlet concentration (dirichlet, inner_dirichlet); small = more skew.
    min_partition_size : int
        Dirichlet: resample until every client has at least this many samples.
    self_balancing : bool
        Dirichlet: stop giving a class to clients already above the average size.
    classes_per_client : int
        Pathological: number of classes each client holds.
    class_assignment : str
        Pathological: random | deterministic | first-deterministic.
    shards_per_client : int
        Shard: shards each client receives.
    shard_size : int
        Shard: samples per shard (default: derived from the pool size).
    sizes : list[int]
        size / inner_dirichlet: the number of samples of each client.
    """

    kind: Literal[PARTITION_KINDS] = "iid"  # type: ignore[valid-type]
    num_clients: Annotated[int, Field(ge=1, le=10_000)] = 10
    alpha: Annotated[float, Field(gt=0)] = 0.5
    min_partition_size: Annotated[int, Field(ge=0)] = 10
    self_balancing: bool = False
    classes_per_client: Annotated[int, Field(ge=1)] = 2
    class_assignment: Literal["random", "deterministic", "first-deterministic"] = "random"
    shards_per_client: Annotated[int, Field(ge=1)] = 2
    shard_size: Annotated[int, Field(ge=1)] | None = None
    sizes: list[Annotated[int, Field(ge=1)]] | None = None

    def applicable(self) -> set[str]:
        return PARTITION_FIELDS[self.kind] | PARTITION_COMMON

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> PartitionConfig:
        self.check_applicable(f"partition kind '{self.kind}'")
        if self.kind in ("size", "inner_dirichlet"):
            if self.sizes is None:
                raise _field_error("sizes", f"is required for partition kind '{self.kind}'")
            if len(self.sizes) != self.num_clients:
                raise _field_error(
                    "sizes",
                    f"has {len(self.sizes)} entries but num_clients is {self.num_clients}",
                )
        return self


class ImbalanceConfig(Section):
    """Long-tail class imbalance applied to each client's training data.

    Parameters
    ----------
    ratio : float
        Frequency of the rarest class over the most frequent one, in (0, 1].
    """

    ratio: Annotated[float, Field(gt=0, le=1)]


class LimitedConfig(Section):
    """Limited data: keep only part of each client's training data.

    Parameters
    ----------
    fraction : float
        Share of each client's training samples to keep, in (0, 1].
    max_samples : int
        At most this many training samples per client.
    """

    fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    max_samples: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> LimitedConfig:
        if (self.fraction is None) == (self.max_samples is None):
            raise ValueError("set exactly one of 'fraction' or 'max_samples'")
        return self


class LabelNoiseConfig(Section):
    """Label noise injected into each client's training labels.

    Parameters
    ----------
    kind : str
        symmetric (uniform over the other classes) | pairflip (class c -> c+1).
    rate : float
        Probability that a label is corrupted, in [0, 1).
    """

    kind: Literal["symmetric", "pairflip"] = "symmetric"
    rate: Annotated[float, Field(ge=0, lt=1)]


class ShiftAugment(Section):
    """Random translation by up to ``pixels`` in each direction (zero fill)."""

    name: Literal["shift"]
    pixels: Annotated[int, Field(ge=1)] = 2


class FlipAugment(Section):
    """Horizontal flip with probability ``p`` (only where mirror images keep the label)."""

    name: Literal["flip"]
    p: Annotated[float, Field(gt=0, le=1)] = 0.5


class RotateAugment(Section):
    """Random rotation by up to ``degrees`` either way."""

    name: Literal["rotate"]
    degrees: Annotated[float, Field(gt=0, le=180)] = 10.0


class NoiseAugment(Section):
    """Additive Gaussian noise of standard deviation ``std``, clipped to [0, 1]."""

    name: Literal["noise"]
    std: Annotated[float, Field(gt=0, le=1)] = 0.05


AugmentConfig = Annotated[
    ShiftAugment | FlipAugment | RotateAugment | NoiseAugment, Field(discriminator="name")
]


class DataConfig(Section):
    """Data source and its federated split.

    Parameters
    ----------
    dataset : str
        ``mnist-5k`` | ``digits`` (bundled, offline) | ``hf:<hub name or local dir>`` |
        ``npz:<path>`` (arrays ``x`` and ``y``).
    image_key, label_key : str
        Column names for ``hf:`` datasets (default: detected).
    test_fraction : float
        Stratified share held out as the server's global test set.
    val_fraction : float
        Share of each client's partition kept for local validation.
    partition, imbalance, limited, label_noise
        See their sections.
    augment : list
        Training-batch augmentations on clients, applied in order: ``shift`` {pixels},
        ``flip`` {p}, ``rotate`` {degrees}, ``noise`` {std}. Images only.
    """

    dataset: str = "mnist-5k"
    image_key: str | None = None
    label_key: str | None = None
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    partition: PartitionConfig = PartitionConfig()
    imbalance: ImbalanceConfig | None = None
    limited: LimitedConfig | None = None
    label_noise: LabelNoiseConfig | None = None
    augment: list[AugmentConfig] = []

    @field_validator("dataset")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value in BUNDLED_DATASETS:
            return value
        for prefix in ("hf:", "npz:"):
            if value.startswith(prefix):
                if not value[len(prefix) :].strip():
                    raise ValueError(f"'{prefix}' needs a name or path after it")
                return value
        known = ", ".join([*BUNDLED_DATASETS, "hf:<name>", "npz:<path>"])
        raise ValueError(f"unknown dataset '{value}'; known: {known}")


# -------------------------------------------------------------------------- model


class NormalizeConfig(Section):
    """Per-channel input standardisation ``(x - mean) / std``, done inside the model.

    Inside the model, so data, augmentation and attacks keep working on [0, 1] inputs.

    Parameters
    ----------
    mean, std : list[float]
        One value per input channel (e.g. MNIST: mean [0.1307], std [0.3081]).
    """

    mean: list[float] = Field(min_length=1)
    std: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_length(self) -> NormalizeConfig:
        if len(self.mean) != len(self.std):
            raise _field_error("std", f"has {len(self.std)} values but mean has {len(self.mean)}")
        return self


class ModelConfig(Section):
    """Network architecture, from the model registry.

    Parameters
    ----------
    name : str
        A registered model name (``cnn``, ``mlp``, ``resnet``).
    hidden : list[int]
        Hidden widths: the MLP's layers, or the CNN's fully connected layer.
    channels : list[int]
        Convolution channels: one conv block each (cnn), one residual stage each (resnet).
    activation : str
        relu | leaky_relu | prelu | gelu | tanh.
    dropout : float
        Dropout probability before each hidden fully connected layer and the classifier.
    init : str
        Weight initialisation: default (PyTorch's) | kaiming | xavier.
    checkpointing : bool
        Gradient checkpointing (resnet): recompute activations in the backward pass to
        save memory.
    normalize : NormalizeConfig
        Optional per-channel input standardisation inside the model.
    """

    name: str = "cnn"
    hidden: list[Annotated[int, Field(ge=1)]] | None = None
    channels: list[Annotated[int, Field(ge=1)]] | None = None
    activation: Literal["relu", "leaky_relu", "prelu", "gelu", "tanh"] = "relu"
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    init: Literal["default", "kaiming", "xavier"] = "default"
    checkpointing: bool = False
    normalize: NormalizeConfig | None = None

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from fedrobust.models import known_models

        if value not in known_models():
            raise ValueError(f"unknown model '{value}'; known: {', '.join(known_models())}")
        return value

    def applicable(self) -> set[str]:
        from fedrobust.models import model_options

        accepted = set(type(self).model_fields) & set(model_options(self.name))
        return {"name", "init", "normalize"} | accepted

    @model_validator(mode="after")
    def _options_fit_model(self) -> ModelConfig:
        self.check_applicable(f"model '{self.name}'")
        return self


# -------------------------------------------------------------------------- train


class OptimizerConfig(Section):
    """Client optimizer.

    Parameters
    ----------
    name : str
        sgd | adam | adamw | rmsprop.
    lr : float
        Learning rate.
    momentum : float
        SGD / RMSprop momentum.
    nesterov : bool
        SGD Nesterov momentum (needs momentum > 0).
    weight_decay : float
        L2 penalty.
    """

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    lr: Annotated[float, Field(gt=0, le=10)] = 0.02
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0)] = 0.0

    def applicable(self) -> set[str]:
        fields = set(type(self).model_fields)
        if self.name == "sgd":
            return fields
        if self.name == "rmsprop":
            return fields - {"nesterov"}
        return fields - {"momentum", "nesterov"}

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerConfig:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise _field_error("nesterov", "needs optimizer 'sgd' with momentum > 0")
        self.check_applicable(f"optimizer '{self.name}'")
        return self


LOSS_FIELDS: dict[str, set[str]] = {
    "cross_entropy": set(),
    "label_smoothing": {"smoothing"},
    "gce": {"q"},
    "sce": {"alpha", "beta"},
    "focal": {"gamma"},
}


class LossConfig(Section):
    """Training loss (``fedrobust.train.losses``).

    Parameters
    ----------
    name : str
        cross_entropy | label_smoothing | gce | sce | focal.
    smoothing : float
        label_smoothing: probability mass spread over the other classes.
    q : float
        gce: in (0, 1]; 1 is MAE, towards 0 is cross-entropy.
    alpha, beta : float
        sce: weights of cross-entropy and reverse cross-entropy.
    gamma : float
        focal: focusing parameter.
    """

    name: Literal[tuple(LOSS_FIELDS)] = "cross_entropy"  # type: ignore[valid-type]
    smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1
    q: Annotated[float, Field(gt=0, le=1)] = 0.7
    alpha: Annotated[float, Field(ge=0)] = 0.1
    beta: Annotated[float, Field(ge=0)] = 1.0
    gamma: Annotated[float, Field(ge=0)] = 2.0

    def applicable(self) -> set[str]:
        return LOSS_FIELDS[self.name] | {"name"}

    @model_validator(mode="after")
    def _fields_fit_name(self) -> LossConfig:
        self.check_applicable(f"loss '{self.name}'")
        return self

    def params(self) -> dict[str, float]:
        """The parameters of the chosen loss."""
        return {k: getattr(self, k) for k in LOSS_FIELDS[self.name]}


SCHEDULE_FIELDS: dict[str, set[str]] = {
    "constant": set(),
    "step": {"step_rounds", "gamma"},
    "cosine": {"min_lr"},
    "warmup_cosine": {"warmup_rounds", "min_lr"},
}


class LrScheduleConfig(Section):
    """Learning rate across rounds: every client uses the same rate in a round.

    Parameters
    ----------
    name : str
        constant | step | cosine | warmup_cosine.
    step_rounds : int
        step: multiply by ``gamma`` every this many rounds.
    gamma : float
        step: decay factor.
    min_lr : float
        cosine, warmup_cosine: the rate at the last round.
    warmup_rounds : int
        warmup_cosine: rounds of linear warm-up from lr / warmup_rounds to lr.
    """

    name: Literal[tuple(SCHEDULE_FIELDS)] = "constant"  # type: ignore[valid-type]
    step_rounds: Annotated[int, Field(ge=1)] = 10
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.5
    min_lr: Annotated[float, Field(ge=0)] = 0.0
    warmup_rounds: Annotated[int, Field(ge=1)] = 2

    def applicable(self) -> set[str]:
        return SCHEDULE_FIELDS[self.name] | {"name"}

    @model_validator(mode="after")
    def _fields_fit_name(self) -> LrScheduleConfig:
        self.check_applicable(f"lr_schedule '{self.name}'")
        return self


class EarlyStoppingConfig(Section):
    """Server-side early stopping on the global test metrics.

    Parameters
    ----------
    metric : str
        accuracy | balanced_accuracy (higher is better) | loss (lower is better).
    patience : int
        Rounds without an improvement of at least ``min_delta`` before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    """

    metric: Literal["accuracy", "balanced_accuracy", "loss"] = "accuracy"
    patience: Annotated[int, Field(ge=1)] = 5
    min_delta: Annotated[float, Field(ge=0)] = 0.0


class TrainConfig(Section):
    """Federated training recipe.

    Parameters
    ----------
    rounds : int
        Number of federated rounds.
    local_epochs : int
        Passes over the local training data per round.
    batch_size : int
        Local mini-batch size.
    optimizer : OptimizerConfig
        The client optimizer.
    fraction_train : float
        Share of clients sampled each round, in (0, 1].
    min_train_clients : int
        At least this many clients are sampled each round.
    loss : LossConfig
        The training loss.
    lr_schedule : LrScheduleConfig
        Learning rate across rounds.
    grad_clip : float
        Clip each step's gradient to this global L2 norm (exploding gradients).
    l1 : float
        Weight of an L1 penalty on the weights.
    class_weights : str
        none | balanced (weight each class by n / (K * n_class) in the loss).
    sampler : str
        none | balanced (draw batches with class-balanced oversampling).
    precision : str
        fp32 | bf16 (CPU autocast for the forward pass).
    early_stopping : EarlyStoppingConfig
        Stop the run when the global metric stops improving; keep the best model.
    """

    rounds: Annotated[int, Field(ge=1, le=100_000)] = 20
    local_epochs: Annotated[int, Field(ge=1, le=1000)] = 1
    batch_size: Annotated[int, Field(ge=1)] = 32
    optimizer: OptimizerConfig = OptimizerConfig()
    fraction_train: Annotated[float, Field(gt=0, le=1)] = 1.0
    min_train_clients: Annotated[int, Field(ge=1)] = 1
    loss: LossConfig = LossConfig()
    lr_schedule: LrScheduleConfig = LrScheduleConfig()
    grad_clip: Annotated[float, Field(gt=0)] | None = None
    l1: Annotated[float, Field(ge=0)] = 0.0
    class_weights: Literal["none", "balanced"] = "none"
    sampler: Literal["none", "balanced"] = "none"
    precision: Literal["fp32", "bf16"] = "fp32"
    early_stopping: EarlyStoppingConfig | None = None


# ----------------------------------------------------------------------- strategy

STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi", "fedavgm")
STRATEGY_FIELDS: dict[str, set[str]] = {
    "fedavg": set(),
    "fedprox": {"proximal_mu"},
    "fedadam": {"server_lr", "beta_1", "beta_2", "tau"},
    "fedyogi": {"server_lr", "beta_1", "beta_2", "tau"},
    "fedavgm": {"server_lr", "server_momentum"},
}


class StrategyConfig(Section):
    """Server update rule (Flower message-API strategies).

    Parameters
    ----------
    name : str
        fedavg | fedprox | fedadam | fedyogi | fedavgm.
    proximal_mu : float
        FedProx proximal term weight.
    server_lr : float
        Server learning rate (FedAdam/FedYogi ``eta``, FedAvgM ``server_learning_rate``).
    beta_1, beta_2 : float
        FedAdam/FedYogi moment decay rates.
    tau : float
        FedAdam/FedYogi adaptivity.
    server_momentum : float
        FedAvgM server momentum.
    """

    name: Literal[STRATEGIES] = "fedavg"  # type: ignore[valid-type]
    proximal_mu: Annotated[float, Field(ge=0)] = 0.01
    server_lr: Annotated[float, Field(gt=0)] | None = None
    beta_1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta_2: Annotated[float, Field(ge=0, lt=1)] = 0.99
    tau: Annotated[float, Field(gt=0)] = 1e-3
    server_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9

    def applicable(self) -> set[str]:
        return STRATEGY_FIELDS[self.name] | {"name"}

    @model_validator(mode="after")
    def _fields_fit_name(self) -> StrategyConfig:
        self.check_applicable(f"strategy '{self.name}'")
        return self


# --------------------------------------------------------------- simulation/output


class SimulationConfig(Section):
    """Flower simulation (Ray backend) resources.

    Parameters
    ----------
    cpus_per_client : int
        CPUs reserved per ClientApp actor (sets how many run at once).
    gpus_per_client : float
        GPUs reserved per ClientApp actor (0 on a CPU machine).
    num_cpus : int
        CPUs Ray may use in total (default: all).
    timeout : float
        Seconds the server waits for a round's replies.
    """

    cpus_per_client: Annotated[int, Field(ge=1)] = 1
    gpus_per_client: Annotated[float, Field(ge=0)] = 0.0
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    timeout: Annotated[float, Field(gt=0)] = 600.0


class OutputConfig(Section):
    """Where results go.

    Parameters
    ----------
    dir : str
        Run directory (default ``runs/<name>``); ``--out`` overrides it.
    """

    dir: str | None = None


# ------------------------------------------------------------------------ privacy

DP_FIELDS: dict[str, set[str]] = {
    "none": set(),
    "sample": {
        "noise_multiplier",
        "target_epsilon",
        "epsilon_budget",
        "delta",
        "max_grad_norm",
        "accountant",
        "poisson_sampling",
        "grad_sample_mode",
        "max_physical_batch_size",
        "reproducible",
    },
    "client": {
        "noise_multiplier",
        "target_epsilon",
        "delta",
        "accountant",
        "clipping",
        "clipping_norm",
        "side",
        "target_clipped_quantile",
        "clip_norm_lr",
        "clipped_count_stddev",
        "reproducible",
    },
}
ADAPTIVE_FIELDS = {"target_clipped_quantile", "clip_norm_lr", "clipped_count_stddev"}


class DPConfig(Section):
    """Differential privacy (``fedrobust.privacy``).

    Parameters
    ----------
    mode : str
        none | sample (Opacus DP-SGD on every client: each client's examples are
        protected) | client (user-level DP-FedAvg: each client's whole update is clipped
        and the server adds Gaussian noise to the average).
    noise_multiplier : float
        sigma: noise standard deviation over the clipping norm. Exactly one of
        ``noise_multiplier`` and ``target_epsilon``.
    target_epsilon : float
        Calibrate sigma once for the whole run so that no client ends above this epsilon;
        it is also each client's budget.
    epsilon_budget : float
        sample, with ``noise_multiplier``: a client whose next round would take it above
        this epsilon refuses to train (default: no budget).
    delta : float
        The delta of (epsilon, delta)-DP; must be below 1 / (smallest client training set).
    max_grad_norm : float
        sample: per-example gradient clipping norm C.
    accountant : str
        rdp | prv | gdp (Opacus accountants).
    poisson_sampling : bool
        sample: Poisson-sampled batches (what the accountant assumes).
    grad_sample_mode : str
        sample: hooks | functorch | ew | ghost (Opacus per-sample gradient engines).
    max_physical_batch_size : int
        sample: split logical batches into physical ones of at most this size (memory).
    clipping : str
        client: fixed | adaptive (Andrew et al. 2021 quantile-based clipping norm).
    clipping_norm : float
        client: the update clipping norm (adaptive: its initial value).
    side : str
        client: where updates are clipped, client | server.
    target_clipped_quantile, clip_norm_lr, clipped_count_stddev : float
        client, adaptive: the quantile of update norms to clip at, the geometric
        update rate of the norm, and the noise on the clipped count (default: sampled
        clients / 20).
    reproducible : bool
        Derive the protecting randomness (DP-SGD noise and Poisson batches, client-level
        noise and client sampling) from the public seed instead of the OS's secret
        entropy, so a run repeats exactly. Anyone holding the run directory can then
        regenerate the noise: such a run reports ``final.privacy_valid: false`` and its
        epsilon protects nothing. Default false.
    """

    mode: Literal["none", "sample", "client"] = "none"
    noise_multiplier: Annotated[float, Field(gt=0)] | None = None
    target_epsilon: Annotated[float, Field(gt=0)] | None = None
    epsilon_budget: Annotated[float, Field(gt=0)] | None = None
    delta: Annotated[float, Field(gt=0, lt=1)] = 1e-5
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    accountant: Literal["rdp", "prv", "gdp"] = "rdp"
    poisson_sampling: bool = True
    grad_sample_mode: Literal["hooks", "functorch", "ew", "ghost"] = "hooks"
    max_physical_batch_size: Annotated[int, Field(ge=1)] | None = None
    clipping: Literal["fixed", "adaptive"] = "fixed"
    clipping_norm: Annotated[float, Field(gt=0)] = 1.0
    side: Literal["client", "server"] = "client"
    target_clipped_quantile: Annotated[float, Field(ge=0, le=1)] = 0.5
    clip_norm_lr: Annotated[float, Field(gt=0)] = 0.2
    clipped_count_stddev: Annotated[float, Field(gt=0)] | None = None
    reproducible: bool = False

    def applicable(self) -> set[str]:
        fields = DP_FIELDS[self.mode] | {"mode"}
        if self.mode == "client" and self.clipping == "fixed":
            fields -= ADAPTIVE_FIELDS
        return fields

    @model_validator(mode="after")
    def _fields_fit_mode(self) -> DPConfig:
        self.check_applicable(f"privacy.dp.mode '{self.mode}'")
        if self.mode != "none" and (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise _field_error(
                "noise_multiplier", "set exactly one of noise_multiplier and target_epsilon"
            )
        if self.epsilon_budget is not None and self.target_epsilon is not None:
            raise _field_error("epsilon_budget", "target_epsilon is already the budget; set one")
        return self

    @property
    def budget(self) -> float | None:
        """The epsilon no client may exceed, if any."""
        return self.target_epsilon if self.target_epsilon is not None else self.epsilon_budget


class AuditConfig(Section):
    """One-run privacy audit (Steinke, Nasr & Jagielski 2023).

    Parameters
    ----------
    canaries : int
        Number of canary examples (random images with random labels), spread over the
        clients; each is included in its client's training set with probability 1/2.
    confidence : float
        Confidence of the reported lower bound on epsilon.
    """

    canaries: Annotated[int, Field(ge=10, le=100_000)] = 500
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95


SECAGG_STAGES = ("share_keys", "collect_masked_vectors", "unmask")


class SecAggDropout(Section):
    """Simulated dropouts, for testing: a seeded share of the round's clients whose replies
    the server discards at ``stage``.

    Parameters
    ----------
    stage : str
        share_keys | collect_masked_vectors | unmask.
    fraction : float
        Share of the clients still in the protocol that drop at that stage.
    """

    stage: Literal[SECAGG_STAGES]  # type: ignore[valid-type]
    fraction: Annotated[float, Field(ge=0, le=1)]


class SecAggConfig(Section):
    """SecAgg+ secure aggregation (Bell et al. 2020, ``fedrobust.secagg``): the server learns
    only the sum of the clients' weighted, clipped, quantised updates.

    Parameters
    ----------
    enabled : bool
        Run rounds through SecAgg+ (default true when the section is given).
    num_shares : int or float
        Size of each client's share group (itself and its ring neighbours); a float in
        (0, 1] is a share of the clients sampled per round. At least 3; odd when smaller
        than the clients per round.
    reconstruction_threshold : int or float
        Shares needed to rebuild a dropped client's secret, 2 <= t <= num_shares; a float
        is a share of ``num_shares``. Above half of ``num_shares`` is recommended.
    clipping_range : float
        Update values (weights minus global weights) are clipped to +-clipping_range and
        counted before masking.
    quantization_range : int
        Quantisation steps across [-clipping_range, clipping_range], at most 2^30.
    modulus_range : int
        Modulus of the masked arithmetic: a power of two, at most 2^62, large enough that
        the sum of the clients' values cannot wrap.
    max_weight : float
        Largest client weight (example count); default: the largest client's training set.
    timeout : float
        Seconds the server waits for the replies of each stage; late clients drop out.
    simulate_dropout : SecAggDropout
        For testing: clients whose replies are discarded at one stage.
    """

    enabled: bool = True
    num_shares: int | float = 1.0
    reconstruction_threshold: int | float = 0.67
    clipping_range: Annotated[float, Field(gt=0)] = 8.0
    quantization_range: Annotated[int, Field(ge=2, le=2**30)] = 2**22
    modulus_range: Annotated[int, Field(ge=2, le=2**62)] = 2**40
    max_weight: Annotated[float, Field(gt=0)] | None = None
    timeout: Annotated[float, Field(gt=0, le=86400)] = 120.0
    simulate_dropout: SecAggDropout | None = None

    def params(self, max_weight: float) -> SecAggParams:
        """The protocol parameters (``max_weight`` when the section leaves it unset)."""
        from fedrobust.secagg.config import SecAggParams

        return SecAggParams(
            num_shares=self.num_shares,
            reconstruction_threshold=self.reconstruction_threshold,
            clipping_range=self.clipping_range,
            quantization_range=self.quantization_range,
            modulus_range=self.modulus_range,
            max_weight=self.max_weight or max_weight,
        )


class PrivacyConfig(Section):
    """Privacy: differential privacy and its empirical audit.

    Parameters
    ----------
    dp : DPConfig
        Differential privacy mode and parameters.
    audit : AuditConfig
        Canary audit run with the training (default: off).
    secure_aggregation : SecAggConfig
        SecAgg+ between clients and server (default: off).
    """

    dp: DPConfig = DPConfig()
    audit: AuditConfig | None = None
    secure_aggregation: SecAggConfig | None = None


# -------------------------------------------------------------------- adversarial

ADV_TRAINING_FIELDS: dict[str, set[str]] = {
    "none": set(),
    "pgd_at": {"eps", "alpha", "steps", "ratio", "start_round", "norm"},
    "fgsm_rs": {"eps", "alpha", "ratio", "start_round"},
    "trades": {"eps", "alpha", "steps", "start_round", "beta"},
}


class AdversarialTrainingConfig(Section):
    """Adversarial training on the clients (``fedrobust.adversarial``).

    Parameters
    ----------
    method : str
        none | pgd_at (Madry et al. 2018) | fgsm_rs (FGSM with random start, Wong et al.
        2020) | trades (Zhang et al. 2019).
    eps : float
        Perturbation budget in input units ([0, 1] pixels).
    alpha : float
        Step size (default: 2.5 * eps / steps for PGD and TRADES, 1.25 * eps for fgsm_rs).
    steps : int
        Attack iterations (pgd_at, trades).
    ratio : float
        Share of each batch replaced by its adversarial version (pgd_at, fgsm_rs).
    start_round : int
        First round with adversarial training (warm-up before it).
    norm : str
        linf | l2 (pgd_at).
    beta : float
        trades: weight of the robustness (KL) term.
    """

    method: Literal[tuple(ADV_TRAINING_FIELDS)] = "none"  # type: ignore[valid-type]
    eps: Annotated[float, Field(gt=0, le=1)] = 0.3
    alpha: Annotated[float, Field(gt=0, le=1)] | None = None
    steps: Annotated[int, Field(ge=1, le=1000)] = 10
    ratio: Annotated[float, Field(gt=0, le=1)] = 1.0
    start_round: Annotated[int, Field(ge=1)] = 1
    norm: Literal["linf", "l2"] = "linf"
    beta: Annotated[float, Field(ge=0)] = 6.0

    def applicable(self) -> set[str]:
        return ADV_TRAINING_FIELDS[self.method] | {"method"}

    @model_validator(mode="after")
    def _fields_fit_method(self) -> AdversarialTrainingConfig:
        self.check_applicable(f"adversarial.training.method '{self.method}'")
        return self

    def step_size(self) -> float:
        """alpha, or the method's usual default."""
        if self.alpha is not None:
            return self.alpha
        if self.method == "fgsm_rs":
            return 1.25 * self.eps
        return 2.5 * self.eps / self.steps


class AdversarialEvaluationConfig(Section):
    """Robust accuracy of the global model under attack (server side).

    Parameters
    ----------
    attacks : list[str]
        torchattacks attacks by name (``fedrobust.attacks.known_attacks()``).
    eps : list[float]
        Budgets to evaluate at, each in (0, 1].
    steps : int
        Iterations of iterative attacks.
    norm : str
        linf | l2, for attacks that take a norm (APGD, AutoAttack, Square, FAB).
    every_n_rounds : int
        Evaluate every n rounds (and always after the last).
    num_samples : int
        Test examples attacked (a seeded random subset of the held-out test set).
    """

    attacks: Annotated[list[str], Field(min_length=1)] = ["pgd", "fgsm"]
    eps: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)] = [0.1]
    steps: Annotated[int, Field(ge=1, le=1000)] = 20
    norm: Literal["linf", "l2"] = "linf"
    every_n_rounds: Annotated[int, Field(ge=1)] = 5
    num_samples: Annotated[int, Field(ge=1)] = 500

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, names: list[str]) -> list[str]:
        from fedrobust.attacks import check_attack_name

        for i, name in enumerate(names):
            try:
                check_attack_name(name)
            except ValueError as exc:
                raise _field_error(str(i), str(exc)) from None
        return names


class AdversarialConfig(Section):
    """Adversarial robustness: training on the clients, evaluation on the server.

    Parameters
    ----------
    training : AdversarialTrainingConfig
        How clients harden the model.
    evaluation : AdversarialEvaluationConfig
        Which attacks the server measures (default: none).
    """

    training: AdversarialTrainingConfig = AdversarialTrainingConfig()
    evaluation: AdversarialEvaluationConfig | None = None


# ---------------------------------------------------------------------- poisoning

ATTACK_FIELDS: dict[str, set[str]] = {
    "none": set(),
    "label_flip": {"flip_map"},
    "sign_flip": {"scale"},
    "gaussian": {"noise_std"},
    "scaling": {"scale"},
    "backdoor": {"target_class", "trigger_size", "trigger_value", "poison_fraction", "scale"},
    "alie": {"z"},
    "ipm": {"epsilon"},
    "minmax": {"deviation"},
}
# The kinds run by the colluding attacker component on the server (fedrobust.robust.collusion);
# the others run inside the malicious ClientApps on their own data.
COLLUDING_ATTACKS = ("alie", "ipm", "minmax")


class AttackConfig(Section):
    """Malicious clients (``fedrobust.robust``): who lies, from when, and how.

    Parameters
    ----------
    kind : str
        none | label_flip | sign_flip | gaussian | scaling | backdoor (data or update
        poisoning on the malicious clients) | alie (Baruch et al. 2019) | ipm (Xie et al.
        2020) | minmax (Shejwalkar & Houmansadr 2021): colluding attackers who know the
        round's benign updates.
    fraction : float
        Share of the clients that are malicious (default 0.2 when ``count`` is unset).
    count : int
        Number of malicious clients (instead of ``fraction``).
    start_round : int
        First round in which the malicious clients attack (they behave before it).
    flip_map : dict[int, int]
        label_flip: source class -> target class (default: y -> K - 1 - y).
    scale : float
        sign_flip: the update sent is ``-scale * update`` (default 1); scaling and
        backdoor: ``scale * update`` (default 10 and 1; backdoor with a scale above 1 is
        model replacement, Bagdasaryan et al. 2020).
    noise_std : float
        gaussian: the update sent is N(0, noise_std^2) per coordinate.
    target_class : int
        backdoor: the class triggered inputs should be classified as.
    trigger_size : int
        backdoor: side of the square trigger in the bottom-right corner (images) or the
        number of last features (flat inputs) set to ``trigger_value``.
    trigger_value : float
        backdoor: value written into the trigger pixels (inputs are in [0, 1]).
    poison_fraction : float
        backdoor: share of a malicious client's training examples stamped and relabelled.
    z : float
        alie: standard deviations from the benign mean (default: Baruch et al.'s z_max
        from the numbers of clients and attackers).
    epsilon : float
        ipm: the update sent is ``-epsilon * mean(benign updates)``.
    deviation : str
        minmax: perturbation direction, std | unit_vec | sign.
    """

    kind: Literal[tuple(ATTACK_FIELDS)] = "none"  # type: ignore[valid-type]
    fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    count: Annotated[int, Field(ge=1)] | None = None
    start_round: Annotated[int, Field(ge=1)] = 1
    flip_map: dict[int, int] | None = None
    scale: Annotated[float, Field(gt=0)] | None = None
    noise_std: Annotated[float, Field(gt=0)] = 1.0
    target_class: Annotated[int, Field(ge=0)] = 0
    trigger_size: Annotated[int, Field(ge=1)] = 2
    trigger_value: Annotated[float, Field(ge=0, le=1)] = 1.0
    poison_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    z: Annotated[float, Field(gt=0)] | None = None
    epsilon: Annotated[float, Field(gt=0)] = 0.5
    deviation: Literal["std", "unit_vec", "sign"] = "std"

    def applicable(self) -> set[str]:
        common = {"kind"} if self.kind == "none" else {"kind", "fraction", "count", "start_round"}
        return ATTACK_FIELDS[self.kind] | common

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> AttackConfig:
        self.check_applicable(f"attack.kind '{self.kind}'")
        if self.fraction is not None and self.count is not None:
            raise _field_error("count", "give fraction or count, not both")
        for src, dst in (self.flip_map or {}).items():
            if src < 0 or dst < 0:
                raise _field_error("flip_map", f"class ids must be >= 0 (got {src}: {dst})")
        return self

    def update_scale(self) -> float:
        """The factor a malicious client applies to its update (sign_flip: its magnitude)."""
        if self.scale is not None:
            return self.scale
        return 10.0 if self.kind == "scaling" else 1.0

    def num_malicious(self, num_clients: int) -> int:
        """How many of ``num_clients`` clients are malicious (0 without an attack)."""
        if self.kind == "none":
            return 0
        if self.count is not None:
            return self.count
        return max(1, round((0.2 if self.fraction is None else self.fraction) * num_clients))


DEFENSE_FIELDS: dict[str, set[str]] = {
    "fedavg": set(),
    "krum": {"num_malicious"},
    "multikrum": {"num_malicious", "num_selected"},
    "bulyan": {"num_malicious"},
    "median": set(),
    "trimmed_mean": {"beta"},
    "norm_bound": {"clip_norm"},
    "centered_clip": {"tau", "iterations"},
    "fltrust": {"root_samples", "root_epochs"},
}


class DefenseConfig(Section):
    """How the server combines client updates (``fedrobust.robust.defenses``).

    ``defense.name`` picks how the round's client updates are combined into one;
    ``strategy.name`` then turns that into the server update (FedAvg, FedAdam, ...).

    Parameters
    ----------
    name : str
        fedavg (no defence) | krum | multikrum | bulyan (Flower's selection rules) |
        median | trimmed_mean (coordinate-wise) | norm_bound (clip each update's norm) |
        centered_clip (Karimireddy et al. 2021) | fltrust (Cao et al. 2021).
    num_malicious : int
        krum, multikrum, bulyan: attackers the rule assumes per round (default: the
        scenario's ``attack`` count, else 0); refused when too few clients are sampled
        for the rule to tolerate them.
    num_selected : int
        multikrum: updates averaged (default: sampled clients - num_malicious).
    beta : float
        trimmed_mean: fraction cut at each end per coordinate.
    clip_norm : float
        norm_bound: largest update norm kept (default: the median norm of the round).
    tau : float
        centered_clip: clipping radius around the centre (default: the median distance
        to the centre, recomputed each iteration).
    iterations : int
        centered_clip: clipping iterations (the centre starts at the last aggregate).
    root_samples : int
        fltrust: size of the server's clean root set, drawn (seeded) from the clients'
        held-out validation splits.
    root_epochs : int
        fltrust: local epochs of the server's root update.
    """

    name: Literal[tuple(DEFENSE_FIELDS)] = "fedavg"  # type: ignore[valid-type]
    num_malicious: Annotated[int, Field(ge=0)] | None = None
    num_selected: Annotated[int, Field(ge=1)] | None = None
    beta: Annotated[float, Field(ge=0, lt=0.5)] = 0.2
    clip_norm: Annotated[float, Field(gt=0)] | None = None
    tau: Annotated[float, Field(gt=0)] | None = None
    iterations: Annotated[int, Field(ge=1, le=100)] = 3
    root_samples: Annotated[int, Field(ge=1)] = 100
    root_epochs: Annotated[int, Field(ge=1)] = 1

    def applicable(self) -> set[str]:
        return DEFENSE_FIELDS[self.name] | {"name"}

    @model_validator(mode="after")
    def _fields_fit_name(self) -> DefenseConfig:
        self.check_applicable(f"defense.name '{self.name}'")
        return self


# --------------------------------------------------------------------- continual

CONTINUAL_METHODS = ("ewc", "replay", "lwf")


class EWCConfig(Section):
    """Elastic weight consolidation (Kirkpatrick et al. 2017).

    Parameters
    ----------
    lambda_ : float
        Strength of the penalty (YAML key ``lambda``).
    online : float
        Online EWC decay of the running Fisher at each task end (Schwarz et al. 2018):
        ``F = online * F + F_task``; 1.0 keeps the sum of every task's Fisher.
    fisher_samples : int
        Examples of the finished task the Fisher diagonal is estimated on.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    lambda_: Annotated[float, Field(ge=0, alias="lambda")] = 100.0
    online: Annotated[float, Field(ge=0, le=1)] = 1.0
    fisher_samples: Annotated[int, Field(ge=1)] = 200

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc = handler(self)  # written back under its YAML name
        return {("lambda" if k == "lambda_" else k): v for k, v in doc.items()}


class ReplayConfig(Section):
    """Experience replay from a per-client reservoir buffer (Vitter's algorithm R).

    Parameters
    ----------
    buffer_size : int
        Examples each client keeps from its finished tasks.
    ratio : float
        Replayed examples appended per current example in each batch.
    """

    buffer_size: Annotated[int, Field(ge=1)] = 200
    ratio: Annotated[float, Field(gt=0, le=4)] = 1.0


class LwFConfig(Section):
    """Learning without forgetting (Li & Hoiem 2017): distil the previous task's model.

    Parameters
    ----------
    temperature : float
        Distillation temperature.
    alpha : float
        Weight of the distillation term.
    """

    temperature: Annotated[float, Field(gt=0)] = 2.0
    alpha: Annotated[float, Field(ge=0)] = 1.0


class DomainConfig(Section):
    """The input shift of each domain-incremental task (task 0 is the original data).

    Parameters
    ----------
    kind : str
        permute (a fixed pixel permutation per task, seeded) | rotate.
    num_tasks : int
        Number of tasks.
    degrees : float
        rotate: degrees added per task.
    """

    kind: Literal["permute", "rotate"] = "permute"
    num_tasks: Annotated[int, Field(ge=2, le=50)] = 3
    degrees: Annotated[float, Field(gt=0, le=180)] = 30.0


class ContinualConfig(Section):
    """A sequence of tasks trained one after the other (``fedrobust.continual``).

    Parameters
    ----------
    setting : str
        class_incremental (one head, classes arrive in groups) | task_incremental (the
        task is known: logits outside its classes are masked) | domain_incremental (the
        same classes, shifted inputs per task).
    tasks : list[list[int]]
        class/task-incremental: the class groups in order, e.g. [[0, 1], [2, 3]].
    domain : DomainConfig
        domain-incremental: the shift per task.
    rounds_per_task : int
        Federated rounds spent on each task.
    schedule : str
        together (every client moves on at the same round) | own (each client's task
        boundaries are shifted by a seeded offset of up to ``rounds_per_task - 1`` rounds).
    method : str
        none | ewc | replay | lwf, or a combination joined by ``+`` (``ewc+replay``).
    ewc, replay, lwf : sections
        Each method's settings.
    """

    setting: Literal["class_incremental", "task_incremental", "domain_incremental"]
    tasks: list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]] | None = None
    domain: DomainConfig | None = None
    rounds_per_task: Annotated[int, Field(ge=1)] = 5
    schedule: Literal["together", "own"] = "together"
    method: str = "none"
    ewc: EWCConfig = EWCConfig()
    replay: ReplayConfig = ReplayConfig()
    lwf: LwFConfig = LwFConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ContinualConfig:
        methods = self.methods()
        for name in methods:
            if name not in CONTINUAL_METHODS:
                raise _field_error("method", f"unknown method '{name}'; use none or a "
                                   f"'+'-joined set of {', '.join(CONTINUAL_METHODS)}")  # fmt: skip
        if len(set(methods)) != len(methods):
            raise _field_error("method", "names a method twice")
        if self.setting == "domain_incremental":
            if self.tasks is not None:
                raise _field_error("tasks", "does not apply to domain_incremental (use domain)")
            if self.domain is None:
                self.domain = DomainConfig()
        else:
            if self.domain is not None:
                raise _field_error("domain", f"does not apply to {self.setting}")
            if self.tasks is None or len(self.tasks) < 2:
                raise _field_error("tasks", f"{self.setting} needs at least 2 class groups")
            seen: set[int] = set()
            for i, group in enumerate(self.tasks):
                if seen & set(group) or len(set(group)) != len(group):
                    raise _field_error(f"tasks.{i}", "a class appears in more than one place")
                seen |= set(group)
        return self

    def methods(self) -> list[str]:
        """The methods in use (empty for none)."""
        return [] if self.method == "none" else self.method.split("+")

    def num_tasks(self) -> int:
        """Number of tasks."""
        if self.domain is not None:
            return self.domain.num_tasks
        return len(self.tasks or [])


# ----------------------------------------------------------------------- scenario


class Scenario(Section):
    """A whole experiment: data, model, training recipe, strategy, resources.

    Parameters
    ----------
    name : str
        Scenario name; names the default run directory.
    seed : int
        Seed for every random choice (splits, sampling, initialisation, batches).
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    strategy: StrategyConfig = StrategyConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    attack: AttackConfig = AttackConfig()
    defense: DefenseConfig = DefenseConfig()
    continual: ContinualConfig | None = None
    simulation: SimulationConfig = SimulationConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _combinations(self) -> Scenario:
        n = self.data.partition.num_clients
        if self.train.min_train_clients > n:
            raise _field_error(
                "train.min_train_clients", f"is larger than data.partition.num_clients ({n})"
            )
        if self.data.dataset in BUNDLED_DATASETS and self.data.partition.kind == "pathological":
            if self.data.partition.classes_per_client > 10:
                raise _field_error(
                    "data.partition.classes_per_client",
                    f"is larger than the 10 classes of {self.data.dataset}",
                )
        self._privacy_combinations()
        self._poisoning_combinations()
        self._secagg_combinations()
        self._continual_combinations()
        return self

    def _privacy_combinations(self) -> None:
        dp = self.privacy.dp
        if dp.mode == "sample":
            if self.train.sampler != "none":
                raise _field_error(
                    "train.sampler",
                    "balanced oversampling does not fit DP-SGD's Poisson sampling "
                    "(privacy.dp.mode: sample)",
                )
            if dp.grad_sample_mode == "ew" and self.model.activation == "prelu":
                raise _field_error(
                    "model.activation",
                    "prelu is not supported by privacy.dp.grad_sample_mode 'ew' (expanded "
                    "weights); use hooks or functorch",
                )
            if self.adversarial.training.method == "trades":
                raise _field_error(
                    "adversarial.training.method",
                    "trades needs a second forward pass per example, which breaks DP-SGD's "
                    "per-example clipping (privacy.dp.mode: sample); use pgd_at or fgsm_rs",
                )
            if self.model.checkpointing:
                raise _field_error(
                    "model.checkpointing",
                    "gradient checkpointing breaks Opacus's per-sample gradients "
                    "(privacy.dp.mode: sample)",
                )
        if dp.mode == "client":
            if self.strategy.name not in ("fedavg", "fedprox"):
                raise _field_error(
                    "strategy.name",
                    f"'{self.strategy.name}' transforms the noisy average, which voids the "
                    "noise calibration of client-level DP (privacy.dp.mode: client); "
                    "use fedavg or fedprox",
                )
            if dp.clipping == "adaptive" and dp.noise_multiplier is not None:
                sampled = self.sampled_per_round()
                stddev = dp.clipped_count_stddev or sampled / 20
                if dp.noise_multiplier >= 2 * stddev:
                    raise _field_error(
                        "privacy.dp.noise_multiplier",
                        f"must be below 2 * clipped_count_stddev = {2 * stddev:g} for "
                        "adaptive clipping (raise privacy.dp.clipped_count_stddev)",
                    )

    def _poisoning_combinations(self) -> None:
        n = self.data.partition.num_clients
        attack, defense = self.attack, self.defense
        malicious = attack.num_malicious(n)
        if malicious >= n:
            raise _field_error("attack.count", f"leaves no honest client among {n}")
        if self.data.dataset in BUNDLED_DATASETS:  # 10 classes; other sources: checked at run
            for field, value in _class_fields(attack):
                if value >= 10:
                    raise _field_error(field, f"class {value} is not among the 10 classes")
        if attack.kind in COLLUDING_ATTACKS and n - malicious < 2:
            raise _field_error("attack.count", f"{attack.kind} needs at least 2 honest clients")
        if defense.name != "fedavg" and self.privacy.dp.mode == "client":
            raise _field_error(
                "defense.name",
                f"'{defense.name}' combines individual updates, which voids the noise "
                "calibration of client-level DP (privacy.dp.mode: client); use fedavg",
            )
        sampled = self.sampled_per_round()
        f = self.defense_num_malicious()
        need = {"krum": f + 3, "multikrum": f + 3, "bulyan": 4 * f + 3}.get(defense.name)
        if need is not None and sampled < need:
            raise _field_error(
                "defense.num_malicious",
                f"{defense.name} tolerating {f} attackers needs at least {need} clients per "
                f"round, but {sampled} are sampled",
            )
        if defense.name == "multikrum" and (defense.num_selected or 1) > sampled:
            raise _field_error(
                "defense.num_selected", f"is larger than the {sampled} clients sampled per round"
            )

    def _continual_combinations(self) -> None:
        cl = self.continual
        if cl is None:
            return
        if self.data.dataset in BUNDLED_DATASETS:
            for i, group in enumerate(cl.tasks or []):
                if max(group) >= 10:
                    raise _field_error(f"continual.tasks.{i}", "names a class beyond the 10")
        if cl.methods() and self.privacy.dp.mode == "sample":
            raise _field_error(
                "continual.method",
                "replay buffers, Fisher information and distillation targets come from the "
                "client's private data outside DP-SGD's accounting (privacy.dp.mode: "
                "sample); use method none, or client-level DP (mode: client)",
            )
        if "replay" in cl.methods() and cl.setting == "task_incremental":
            raise _field_error(
                "continual.method",
                "replay would score old examples under the current task's head; use it "
                "class- or domain-incrementally",
            )

    def secagg_enabled(self) -> bool:
        """Whether rounds run through SecAgg+."""
        cfg = self.privacy.secure_aggregation
        return cfg is not None and cfg.enabled

    def _secagg_combinations(self) -> None:
        if not self.secagg_enabled():
            return
        where = "privacy.secure_aggregation"
        if self.defense.name != "fedavg":
            raise _field_error(
                "defense.name",
                f"'{self.defense.name}' needs the individual updates, which {where} hides "
                "from the server; use fedavg (clients can bound their update norms with "
                "privacy.dp.mode: client)",
            )
        if self.attack.kind in COLLUDING_ATTACKS:
            raise _field_error(
                "attack.kind",
                f"'{self.attack.kind}' attackers read the benign updates on the server, "
                f"which {where} hides",
            )
        dp = self.privacy.dp
        if dp.mode == "client" and (dp.side == "server" or dp.clipping == "adaptive"):
            raise _field_error(
                "privacy.dp.side" if dp.side == "server" else "privacy.dp.clipping",
                f"{where} hides the individual updates: client-level DP must clip on the "
                "clients (side: client) with fixed clipping",
            )
        from fedrobust.secagg.config import resolve_params

        cfg = self.privacy.secure_aggregation
        assert cfg is not None
        try:
            resolve_params(cfg.params(1.0), self.sampled_per_round())
        except ValueError as exc:
            field, _, what = str(exc).partition(": ")
            raise _field_error(f"{where}.{field}", what) from None

    def defense_num_malicious(self) -> int:
        """The attackers the defence assumes: ``defense.num_malicious`` or the attack's count."""
        if self.defense.num_malicious is not None:
            return self.defense.num_malicious
        return self.attack.num_malicious(self.data.partition.num_clients)

    def sampled_per_round(self) -> int:
        """How many clients the server samples each round."""
        n = self.data.partition.num_clients
        return min(n, max(self.train.min_train_clients, int(self.train.fraction_train * n), 1))

    def digest(self) -> str:
        """A stable hash of the resolved scenario."""
        return _hash(self.model_dump(mode="json"))

    def resume_digest(self) -> str:
        """Hash of everything a resumed run must share with the original.

        ``train.rounds`` (a run may be extended) and ``output`` (where it is written)
        are left out; any other change refuses the resume.
        """
        doc = self.model_dump(mode="json")
        doc["train"].pop("rounds")
        doc.pop("output")
        return _hash(doc)


def _class_fields(attack: AttackConfig) -> list[tuple[str, int]]:
    """The class ids an attack names, with their fields (for range checks)."""
    fields: list[tuple[str, int]] = []
    if attack.kind == "backdoor":
        fields.append(("attack.target_class", attack.target_class))
    for src, dst in (attack.flip_map or {}).items():
        fields += [("attack.flip_map", src), ("attack.flip_map", dst)]
    return fields


def _hash(doc: dict[str, Any]) -> str:
    text = json.dumps(doc, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- loading


class _FieldError(ValueError):
    """Raised inside validators to point at a sub-field by its dotted name."""

    def __init__(self, field: str, what: str) -> None:
        super().__init__(what)
        self.field = field
        self.what = what


def _field_error(field: str, what: str) -> _FieldError:
    return _FieldError(field, what)


_UNION_TAGS = {"int", "float", "str", "bool", "constrained-int", "constrained-float"}


def _error_from_validation(exc: ValidationError) -> FedrobustError:
    first = exc.errors()[0]
    # a union's member type ("int", "float", "constrained-int", ...) is not a field
    loc = [str(p) for p in first["loc"] if str(p) not in _UNION_TAGS and "[" not in str(p)]
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        loc = [*loc, *ctx_error.field.split(".")]
        message = ctx_error.what
    else:
        message = _plain_message(first)
    return FedrobustError(".".join(loc) or "<scenario>", message)


def _plain_message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind.endswith("_type") or kind.endswith("_parsing"):
        message += f" (got {type(error.get('input')).__name__}: {error.get('input')!r})"
    return message


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_scenario(raw: Any) -> Scenario:
    """Validate an already-parsed mapping into a :class:`Scenario`."""
    if not isinstance(raw, dict):
        raise FedrobustError("<scenario>", "the file must hold a mapping of sections")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise _error_from_validation(exc) from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, parse and validate a scenario YAML file.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    overrides : dict, optional
        Dotted keys to set before validation, e.g. ``{"train.rounds": 3}``.

    Raises
    ------
    FedrobustError
        With the dotted field path, or the file (and line) for I/O and syntax errors.
    """
    path = Path(path)
    if not path.is_file():
        raise FedrobustError(str(path), "no such scenario file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FedrobustError(str(path), f"cannot read: {exc}") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise FedrobustError(where, f"YAML syntax error: {problem}") from None
    if raw is None:
        raise FedrobustError(str(path), "the file is empty")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return parse_scenario(raw)


def _set_dotted(raw: Any, dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(part, {})
    if isinstance(node, dict):
        node[parts[-1]] = value


def scenario_to_yaml(scenario: Scenario) -> str:
    """The resolved scenario (defaults filled in) as YAML."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
