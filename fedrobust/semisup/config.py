"""The ``train.semi_supervised`` section: how a client learns from its unlabelled data.

Which share of each client's training data keeps its labels is ``data.labeled_fraction``
(:mod:`fedrobust.data.config`); this section says what the client does with the rest.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedrobust.config.base import Section

SEMISUP_METHODS = ("pseudo_label", "fixmatch")

#: The ops a strong augmentation draws from: the ``data.augment`` ops (shift, rotate,
#: noise, flip) and three intensity ops of its own.
STRONG_OPS = ("shift", "rotate", "noise", "flip", "brightness", "contrast", "solarize")

#: The default strong ops: every op but ``flip`` (a mirrored digit is another digit).
DEFAULT_STRONG_OPS = ["shift", "rotate", "noise", "brightness", "contrast", "solarize"]


class WeakAugmentConfig(Section):
    """FixMatch's weak augmentation: a small random shift, and a flip where it keeps the
    label.

    Parameters
    ----------
    shift : float
        The largest shift, as a share of the image side (at least one pixel); 0: none.
    flip : bool
        Mirror half of the images (only where a mirrored image keeps its label: not
        digits).
    """

    shift: Annotated[float, Field(ge=0, le=0.5)] = 0.125
    flip: bool = False


class StrongAugmentConfig(Section):
    """FixMatch's strong augmentation: RandAugment-like (Cubuk et al. 2020), each image
    passes through ``num_ops`` ops drawn at random from ``ops``, each at a random strength
    up to ``magnitude``, then Cutout (DeVries and Taylor 2017).

    Parameters
    ----------
    ops : list[str]
        Drawn from: shift (up to 30 % of the side), rotate (up to 30 degrees), noise
        (Gaussian, std up to 0.1), flip, brightness and contrast (factor in 1 +- 0.9),
        solarize (invert pixels above a threshold down to 0.5). Default: all but flip.
    num_ops : int
        Ops applied to each image.
    magnitude : float
        Scales every op's largest strength, in (0, 1].
    cutout : float
        The largest side of the grey square cut out of each image, as a share of the
        image side; 0: no cutout.
    """

    ops: list[Literal[STRONG_OPS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_STRONG_OPS), min_length=1
    )
    num_ops: Annotated[int, Field(ge=1, le=8)] = 2
    magnitude: Annotated[float, Field(gt=0, le=1)] = 1.0
    cutout: Annotated[float, Field(ge=0, lt=1)] = 0.5

    @model_validator(mode="after")
    def _unique(self) -> StrongAugmentConfig:
        if len(set(self.ops)) != len(self.ops):
            raise ValueError("ops lists an op twice")
        return self


class SemiSupervisedConfig(Section):
    """Learn from each client's unlabelled data (``data.labeled_fraction < 1``) beside
    its labelled part.

    Every labelled batch brings ``unlabeled_batch_ratio`` times as many unlabelled
    inputs; their term, weighted by ``weight``, is added to the batch's loss.

    Parameters
    ----------
    method : str
        pseudo_label (Lee 2013): the model's own confident predictions on the unlabelled
        inputs are their targets | fixmatch (Sohn et al. 2020): the prediction on a weakly
        augmented view is the target of a strongly augmented one.
    threshold : float
        Only predictions whose largest softmax probability is at least this count; 0
        keeps all of them.
    weight : float
        Weight of the unlabelled term (Lee's alpha, FixMatch's lambda_u).
    unlabeled_batch_ratio : int
        Unlabelled inputs per labelled one in a batch (FixMatch's mu).
    rampup_rounds : int
        Round 1 trains on the labels alone, then the weight grows linearly to ``weight``
        at round ``rampup_rounds + 1`` (Lee's schedule, in rounds); 0: full weight from
        round 1.
    weak, strong : WeakAugmentConfig, StrongAugmentConfig
        fixmatch: the two views.
    """

    method: Literal[SEMISUP_METHODS]  # type: ignore[valid-type]
    threshold: Annotated[float, Field(ge=0, lt=1)] = 0.95
    weight: Annotated[float, Field(ge=0)] = 1.0
    unlabeled_batch_ratio: Annotated[int, Field(ge=1, le=64)] = 7
    rampup_rounds: Annotated[int, Field(ge=0)] = 0
    weak: WeakAugmentConfig = WeakAugmentConfig()
    strong: StrongAugmentConfig = StrongAugmentConfig()

    def applicable(self) -> set[str]:
        fields = set(type(self).model_fields)
        return fields if self.method == "fixmatch" else fields - {"weak", "strong"}

    @model_validator(mode="after")
    def _fields_fit_method(self) -> SemiSupervisedConfig:
        self.check_applicable(f"method '{self.method}'")
        return self

    def uses_flip(self) -> bool:
        """Whether an augmentation mirrors images."""
        return self.method == "fixmatch" and (self.weak.flip or "flip" in self.strong.ops)

    def ramp(self, rnd: int) -> float:
        """The unlabelled term's weight in round ``rnd`` (1-based)."""
        if self.rampup_rounds == 0:
            return self.weight
        return self.weight * min(1.0, (rnd - 1) / self.rampup_rounds)
