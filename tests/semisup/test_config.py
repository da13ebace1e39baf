"""The ``train.semi_supervised`` section and what limited labels refuse, by field."""

from __future__ import annotations

from typing import Any

import pytest

from fedrobust.config.checks import _check_semi_supervised
from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario

FIXMATCH = {"method": "fixmatch"}
TASKS = {"setting": "class_incremental", "tasks": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]}


def scenario(labeled: float = 0.1, semi: dict | None = None, **sections: Any) -> Any:
    data = {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}}
    train = {"semi_supervised": semi} if semi is not None else {}
    doc = {
        "name": "s",
        **sections,
        "data": {**data, "labeled_fraction": labeled, **sections.pop("data", {})},
        "train": {**train, **sections.pop("train", {})},
    }
    return parse_scenario(doc)


def refused(**kwargs: Any) -> FedrobustError:
    with pytest.raises(FedrobustError) as info:
        scenario(**kwargs)
    return info.value


def test_defaults_follow_the_papers() -> None:
    cfg = scenario(semi=FIXMATCH).train.semi_supervised
    assert (cfg.threshold, cfg.weight, cfg.unlabeled_batch_ratio) == (0.95, 1.0, 7)
    assert cfg.weak.shift == 0.125 and not cfg.weak.flip
    assert "flip" not in cfg.strong.ops and cfg.strong.cutout == 0.5
    assert scenario().data.labeled_fraction == 0.1
    assert parse_scenario({"name": "d"}).data.labeled_fraction == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"labeled": 0.0}, "data.labeled_fraction"),
        ({"labeled": 1.5}, "data.labeled_fraction"),
        ({"semi": {"method": "mixmatch"}}, "train.semi_supervised.method"),
        ({"semi": {**FIXMATCH, "threshold": 1.0}}, "train.semi_supervised.threshold"),
        ({"semi": {**FIXMATCH, "unlabeled_batch_ratio": 0}},
         "train.semi_supervised.unlabeled_batch_ratio"),
        ({"semi": {**FIXMATCH, "strong": {"ops": ["warp"]}}}, "train.semi_supervised.strong.ops.0"),
        ({"semi": {**FIXMATCH, "strong": {"ops": ["shift", "shift"]}}},
         "train.semi_supervised.strong"),
        ({"semi": {**FIXMATCH, "extra": 1}}, "train.semi_supervised.extra"),
        ({"semi": {"method": "pseudo_label", "strong": {"num_ops": 1}}},
         "train.semi_supervised.strong"),
    ],
)  # fmt: skip
def test_bad_settings_name_their_field(kwargs: dict, field: str) -> None:
    assert refused(**kwargs).where == field


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"labeled": 1.0, "semi": FIXMATCH}, "train.semi_supervised", "labeled_fraction below 1"),
        ({"privacy": {"dp": {"mode": "sample", "noise_multiplier": 1.0}}},
         "data.labeled_fraction", "not clipped per example"),
        ({"continual": TASKS},
         "data.labeled_fraction", "labels"),
        ({"personalization": {"method": "ditto"}, "data": {"local_test_fraction": 0.2}},
         "personalization.method", "every label"),
        ({"evaluation": {"privacy_attacks": {"attacks": ["membership"]}}},
         "evaluation.privacy_attacks.attacks", "never trained on"),
        ({"semi": {**FIXMATCH, "weak": {"flip": True}}},
         "train.semi_supervised.weak.flip", "digits"),
        ({"semi": {**FIXMATCH, "strong": {"ops": ["flip", "shift"]}}},
         "train.semi_supervised.strong.ops", "digits"),
    ],
)  # fmt: skip
def test_limited_labels_refuse_what_does_not_fit(kwargs: dict, field: str, words: str) -> None:
    error = refused(**kwargs)
    assert error.where == field
    assert words in error.what


def test_what_composes_is_accepted() -> None:
    client_dp = {"dp": {"mode": "client", "noise_multiplier": 0.5, "clipping_norm": 1.0}}
    assert scenario(semi=FIXMATCH, privacy=client_dp).privacy.dp.mode == "client"
    assert scenario(attack={"kind": "label_flip", "count": 1}).attack.kind == "label_flip"
    fedper = {"personalization": {"method": "fedper"}, "data": {"local_test_fraction": 0.2}}
    assert scenario(semi=FIXMATCH, **fedper).personalization.method == "fedper"
    npz = {"data": {"dataset": "npz:x.npz"}}
    assert scenario(semi={**FIXMATCH, "weak": {"flip": True}}, **npz).train.semi_supervised


def test_fixmatch_needs_image_inputs_once_the_data_is_known() -> None:
    fixmatch, pseudo = scenario(semi=FIXMATCH), scenario(semi={"method": "pseudo_label"})
    _check_semi_supervised(fixmatch, (1, 8, 8))
    _check_semi_supervised(pseudo, (64,))
    with pytest.raises(FedrobustError) as info:
        _check_semi_supervised(fixmatch, (64,))
    assert info.value.where == "train.semi_supervised.method"


def test_a_resolved_scenario_validates_again() -> None:
    for semi in (FIXMATCH, {"method": "pseudo_label", "rampup_rounds": 3}):
        sc = scenario(semi=semi)
        assert parse_scenario(sc.model_dump(mode="json")) == sc
