"""The ``train`` section: optimizer, loss, learning-rate schedule, early stopping."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, check_registered, field_error
from fedrobust.semisup.config import SemiSupervisedConfig


class SamConfig(Section):
    """Sharpness-aware minimisation around the client optimizer (``fedrobust.train.sam``).

    Each step takes the gradient at ``w + e_w``, ``e_w`` the steepest ascent of radius
    ``rho`` (SAM, Foret et al. 2021, https://arxiv.org/abs/2010.01412), or of radius
    ``rho`` in the weight-scaled norm with ``T_w = |w| + eta`` (ASAM, Kwon et al. 2021,
    https://arxiv.org/abs/2102.11600), and the optimizer steps from ``w`` with it.

    Parameters
    ----------
    rho : float
        Radius of the ascent step.
    adaptive : bool
        ASAM: scale the neighbourhood element-wise by ``|w| + eta``.
    eta : float
        ASAM: keeps weights at zero inside the neighbourhood.
    """

    rho: Annotated[float, Field(gt=0, le=10)] = 0.05
    adaptive: bool = False
    eta: Annotated[float, Field(ge=0)] = 0.01

    def applicable(self) -> set[str]:
        return set(type(self).model_fields) - (set() if self.adaptive else {"eta"})

    @model_validator(mode="after")
    def _eta_needs_adaptive(self) -> SamConfig:
        self.check_applicable("sam without adaptive: true")
        return self


class WeightNoiseConfig(Section):
    """Gaussian weight perturbation during local training (``fedrobust.train.sam``).

    Each step takes the gradient at ``w + n``, ``n ~ N(0, std^2)`` drawn per trainable
    weight from the client's round seed, and the optimizer steps from ``w`` with it.

    Parameters
    ----------
    std : float
        Standard deviation of the noise added to every trainable weight.
    """

    std: Annotated[float, Field(gt=0, le=1)] = 0.01


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
    sam : SamConfig, optional
        Sharpness-aware minimisation (SAM or ASAM) around this optimizer.
    """

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    lr: Annotated[float, Field(gt=0, le=10)] = 0.02
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    sam: SamConfig | None = None

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
            raise field_error("nesterov", "needs optimizer 'sgd' with momentum > 0")
        self.check_applicable(f"optimizer '{self.name}'")
        return self


# Which LossConfig fields each registered loss (fedrobust.train.losses) reads.
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

    name: str = "cross_entropy"
    smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1
    q: Annotated[float, Field(gt=0, le=1)] = 0.7
    alpha: Annotated[float, Field(ge=0)] = 0.1
    beta: Annotated[float, Field(ge=0)] = 1.0
    gamma: Annotated[float, Field(ge=0)] = 2.0

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from fedrobust.train.losses import known_losses

        return check_registered(value, "loss", known_losses())

    def applicable(self) -> set[str]:
        return LOSS_FIELDS.get(self.name, set()) | {"name"}

    @model_validator(mode="after")
    def _fields_fit_name(self) -> LossConfig:
        self.check_applicable(f"loss '{self.name}'")
        return self

    def params(self) -> dict[str, float]:
        """The parameters of the chosen loss."""
        return {k: getattr(self, k) for k in LOSS_FIELDS.get(self.name, set())}


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
    """Server-side early stopping on the clients' validation results (never the test set).

    Parameters
    ----------
    metric : str
        accuracy | balanced_accuracy (higher is better) | loss (lower is better): of the
        round's global model on the clients' validation splits, weighted by their
        training examples (``val_accuracy``, ``val_balanced_accuracy``, ``val_loss`` in
        metrics.json). The run keeps the best round's model.
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
        fp32 | bf16 | fp16: the forward pass under the device's autocast (bf16 on the CPU
        or CUDA; fp16 on CUDA only, with a gradient scaler; not with DP-SGD or
        optimizer.sam).
    early_stopping : EarlyStoppingConfig
        Stop the run when the global metric stops improving; keep the best model.
    weight_noise : WeightNoiseConfig, optional
        Gaussian weight perturbation during local training (not with optimizer.sam).
    semi_supervised : SemiSupervisedConfig
        Learn from the unlabelled share of each client's data (``data.labeled_fraction``).
    client_momentum : float, optional
        Client momentum ``beta`` in [0, 1) for Byzantine-robust aggregation: each client
        sends the bias-corrected moving average of its own updates instead of this
        round's update (``fedrobust.robust.momentum``; Karimireddy, He & Jaggi 2021).
        Off when null.
    device : str
        auto | cpu | cuda | cuda:N: where local training, evaluation, DP-SGD and attacks
        run (``fedrobust.train.device``). auto: CUDA when the process sees a GPU (in a
        simulation, ``simulation.gpus_per_client`` > 0 gives clients one), else the CPU.
        A GPU asked for and not visible is refused before the run (server) or fails the
        client's round (``client_error``).
    deterministic : bool
        Use torch's deterministic algorithms (an error where an operation has none) and
        cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``), so a run repeats
        bit for bit on the same device, torch and driver.
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
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    early_stopping: EarlyStoppingConfig | None = None
    weight_noise: WeightNoiseConfig | None = None

    @model_validator(mode="after")
    def _one_perturbation(self) -> TrainConfig:
        if self.weight_noise is not None and self.optimizer.sam is not None:
            raise field_error(
                "weight_noise",
                "does not compose with optimizer.sam: each chooses the point the "
                "gradient is taken at; use one",
            )
        return self

    semi_supervised: SemiSupervisedConfig | None = None
    client_momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")] = "auto"
    deterministic: bool = False

    @model_validator(mode="after")
    def _fp16_needs_cuda(self) -> TrainConfig:
        if self.precision == "fp16" and self.device == "cpu":
            raise field_error("precision", "fp16 needs CUDA (train.device: cpu); use bf16")
        if self.precision == "fp16" and self.optimizer.sam is not None:
            raise field_error(
                "precision",
                "fp16 does not compose with optimizer.sam: the ascent step would be taken "
                "along scaled gradients that may overflow; use bf16 or fp32",
            )
        return self


def check_half_precision(train: TrainConfig, dp_mode: str) -> None:
    """fp16 against DP-SGD (``fedrobust.config.compat``): per-example clipping and noise
    would see the gradient scaler's scaled gradients; bf16 needs no scaler."""
    if train.precision == "fp16" and dp_mode == "sample":
        raise field_error(
            "train.precision",
            "fp16 does not compose with DP-SGD (privacy.dp.mode: sample): the gradient "
            "scaler's scaled per-example gradients would be clipped; use bf16 or fp32",
        )
