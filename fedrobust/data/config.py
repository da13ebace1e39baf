"""The ``data`` section: source, federated split, per-client transforms and augmentation.

Also :class:`NormalizeConfig`, the input standardisation a model applies to the data.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, field_error

BUNDLED_DATASETS = ("mnist-5k", "digits")

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
        Pathological: every-class (default: a seeded assignment that gives every class
        to some client whenever num_clients * classes_per_client >= the class count,
        ``fedrobust.data.partition``) | random | deterministic | first-deterministic
        (flwr-datasets' modes, which may leave classes to no client).
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
    class_assignment: Literal["every-class", "random", "deterministic", "first-deterministic"] = (
        "every-class"
    )
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
                raise field_error("sizes", f"is required for partition kind '{self.kind}'")
            if len(self.sizes) != self.num_clients:
                raise field_error(
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
    """Random translation by up to ``pixels`` in each direction (zero fill).

    Parameters
    ----------
    name : str
        shift.
    pixels : int
        The largest shift, in pixels, along each axis.
    """

    name: Literal["shift"]
    pixels: Annotated[int, Field(ge=1)] = 2


class FlipAugment(Section):
    """Horizontal flip with probability ``p`` (only where mirror images keep the label).

    Parameters
    ----------
    name : str
        flip.
    p : float
        Probability that an image is mirrored, in (0, 1].
    """

    name: Literal["flip"]
    p: Annotated[float, Field(gt=0, le=1)] = 0.5


class RotateAugment(Section):
    """Random rotation by up to ``degrees`` either way.

    Parameters
    ----------
    name : str
        rotate.
    degrees : float
        The largest rotation, in degrees, either way (at most 180).
    """

    name: Literal["rotate"]
    degrees: Annotated[float, Field(gt=0, le=180)] = 10.0


class NoiseAugment(Section):
    """Additive Gaussian noise of standard deviation ``std``, clipped to [0, 1].

    Parameters
    ----------
    name : str
        noise.
    std : float
        Standard deviation of the noise, in input units, in (0, 1].
    """

    name: Literal["noise"]
    std: Annotated[float, Field(gt=0, le=1)] = 0.05


class FeatureShiftConfig(Section):
    """A per-client feature shift: each client's inputs (train, validation, local test)
    pass through its own fixed transform; the server's global test set stays unshifted.

    Client ``i`` of ``n`` gets the ``i / (n - 1)`` point of the range (client 0 is
    unshifted).

    Parameters
    ----------
    kind : str
        rotate: client ``i`` is rotated by ``i / (n - 1) * degrees`` | contrast: client
        ``i``'s contrast around 0.5 is scaled from 1 down to ``min_contrast``.
    degrees : float
        rotate: the last client's rotation.
    min_contrast : float
        contrast: the last client's contrast factor, in (0, 1).
    """

    kind: Literal["rotate", "contrast"]
    degrees: Annotated[float, Field(gt=0, le=360)] = 90.0
    min_contrast: Annotated[float, Field(gt=0, lt=1)] = 0.3

    def applicable(self) -> set[str]:
        return {"kind", "degrees" if self.kind == "rotate" else "min_contrast"}

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> FeatureShiftConfig:
        self.check_applicable(f"feature_shift kind '{self.kind}'")
        return self


AugmentConfig = Annotated[
    ShiftAugment | FlipAugment | RotateAugment | NoiseAugment, Field(discriminator="name")
]


class DataConfig(Section):
    """Data source and its federated split.

    Parameters
    ----------
    dataset : str
        ``mnist-5k`` | ``digits`` (bundled, offline) | ``hf:<hub name or local dir>`` |
        ``npz:<path>`` (arrays ``x`` and ``y``) | ``synthetic:<C>x<H>x<W>:<classes>:<n>``
        (seeded class-dependent images, offline, e.g. ``synthetic:3x32x32:10:50000``;
        :mod:`fedrobust.data.synthetic`).
    image_key, label_key : str
        Column names for ``hf:`` datasets (default: detected).
    test_fraction : float
        Stratified share held out as the server's global test set.
    val_fraction : float
        Share of each client's partition kept for local validation.
    local_test_fraction : float
        Share of each client's partition kept as its local test split (drawn from its own
        distribution, before imbalance, limits and label noise); > 0 turns on per-client
        evaluation (``final.global_local``; with ``personalization``,
        ``final.personalized``).
    partition : PartitionConfig
        How the training pool is split across clients.
    imbalance : ImbalanceConfig or None
        A long-tail class imbalance on each client's training data (default: none).
    limited : LimitedConfig or None
        Keep only part of each client's training data (default: all of it).
    label_noise : LabelNoiseConfig or None
        Corrupt a share of each client's training labels (default: none).
    feature_shift : FeatureShiftConfig or None
        A per-client input transform, stronger for each client (default: none).
    augment : list
        Training-batch augmentations on clients, applied in order: ``shift`` {pixels},
        ``flip`` {p}, ``rotate`` {degrees}, ``noise`` {std}. Images only (``noise``
        also on sequences).
    sequence : str
        rows: read each image (C, H, W) row by row as a sequence (T = H steps of
        F = W * C features; sequential MNIST); an ``npz:`` ``x`` of shape (N, T, F) is
        read as T steps of F features (``fedrobust.data.sequence``). Default: none.
    resize : list[int]
        ``[height, width]``: every image of the dataset is resized (bilinear, antialiased
        when shrinking) before the split, e.g. 8x8 digits to MNIST's 28x28 so a model
        pre-trained on one fits the other. Images only. A device's own ``data-path``
        file must already have this size.
    labeled_fraction : float
        Share of each client's training data that keeps its labels, in (0, 1] (a seeded,
        per-client, stratified choice; at least one example); the rest is unlabelled,
        used only by ``train.semi_supervised`` (:mod:`fedrobust.semisup`).
    """

    dataset: str = "mnist-5k"
    image_key: str | None = None
    label_key: str | None = None
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    local_test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    partition: PartitionConfig = PartitionConfig()
    imbalance: ImbalanceConfig | None = None
    limited: LimitedConfig | None = None
    label_noise: LabelNoiseConfig | None = None
    feature_shift: FeatureShiftConfig | None = None
    augment: list[AugmentConfig] = []
    resize: (
        Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=2, max_length=2)]
        | None
    ) = None
    sequence: Literal["rows"] | None = None
    labeled_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _held_out_fits(self) -> DataConfig:
        if self.val_fraction + self.local_test_fraction >= 1:
            raise field_error(
                "local_test_fraction",
                f"plus val_fraction ({self.val_fraction}) leaves no training data",
            )
        return self

    @field_validator("dataset")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value in BUNDLED_DATASETS:
            return value
        if value.startswith("synthetic:"):
            from fedrobust.data.synthetic import parse_synthetic
            from fedrobust.errors import FedrobustError

            try:
                parse_synthetic(value)
            except FedrobustError as exc:
                raise ValueError(exc.what) from None
            return value
        for prefix in ("hf:", "npz:"):
            if value.startswith(prefix):
                if not value[len(prefix) :].strip():
                    raise ValueError(f"'{prefix}' needs a name or path after it")
                return value
        known = ", ".join([*BUNDLED_DATASETS, "hf:<name>", "npz:<path>", "synthetic:CxHxW:K:N"])
        raise ValueError(f"unknown dataset '{value}'; known: {known}")


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
            raise field_error("std", f"has {len(self.std)} values but mean has {len(self.mean)}")
        return self
