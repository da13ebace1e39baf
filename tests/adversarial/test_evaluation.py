"""Robust evaluation: a representative, seeded subset of the test set; figures that cannot
look stronger than they are; the norm honoured or refused."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
import torch

from fedrobust.adversarial.evaluation import (
    CLEAN_KEY,
    WORST,
    attack_key,
    attack_subset,
    default_num_samples,
    robust_accuracy,
)
from fedrobust.attacks import create_attack
from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario


def test_the_attacked_subset_spans_a_class_sorted_test_set_and_repeats() -> None:
    labels = np.repeat(np.arange(10), 100)  # sorted by class, as mnist-5k's test set is
    subset = attack_subset(len(labels), 300, seed=0)
    assert len(subset) == 300 and len(set(subset)) == 300
    counts = np.bincount(labels[subset], minlength=10)
    assert counts.min() >= 15  # every class present, none dominating (the first 300: 3)
    assert np.array_equal(subset, attack_subset(len(labels), 300, seed=0))
    assert not np.array_equal(subset, attack_subset(len(labels), 300, seed=1))
    assert np.array_equal(attack_subset(50, None, 0), np.arange(50))
    assert np.array_equal(attack_subset(50, 80, 0), np.arange(50))


def _model_and_data(n: int = 40) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x = torch.rand(n, 1, 8, 8).numpy()
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()  # clean-correct by construction
    y[: n // 4] = (y[: n // 4] + 1) % 10  # a quarter wrong when clean
    return model, x, y


def test_worst_case_is_never_above_any_single_attack_and_clean_is_reported() -> None:
    model, x, y = _model_and_data()
    attacks = ["pgd", "fgsm", "ffgsm"]
    figures = robust_accuracy(model, x, y, attacks, [0.02, 0.1], steps=3)
    for eps in (0.02, 0.1):
        worst = figures[attack_key(WORST, eps)]
        assert all(worst <= figures[attack_key(a, eps)] for a in attacks)
    assert figures[CLEAN_KEY] == pytest.approx(0.75)


def test_an_example_wrong_when_clean_is_never_counted_robust() -> None:
    model, x, y = _model_and_data()
    # the identity "attack": nothing changes, so only clean-correct examples may count
    with patch("fedrobust.adversarial.evaluation.create_attack") as make:
        make.return_value = lambda inputs, labels: inputs
        figures = robust_accuracy(model, x, y, ["pgd"], [0.1], steps=1)
    assert figures["pgd@0.1"] == figures["worst@0.1"] == figures[CLEAN_KEY] == 0.75
    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).argmax(1).numpy()
    all_wrong = robust_accuracy(model, x, (predicted + 1) % 10, ["fgsm", "pgd"], [0.3], steps=2)
    assert set(all_wrong.values()) == {0.0}


def test_the_whole_test_set_is_attacked_by_default_up_to_a_thousand() -> None:
    assert default_num_samples(800, None) == 800
    assert default_num_samples(5000, None) == 1000
    assert default_num_samples(800, 300) == 300


@pytest.mark.parametrize(
    ("name", "cls"),
    [("pgd", "PGDL2"), ("pgdrs", "PGDRSL2"), ("apgd", "APGD"), ("square", "Square")],
)
def test_norm_l2_runs_the_l2_variant(name: str, cls: str) -> None:
    attack = create_attack(name, torch.nn.Linear(4, 2), 0.5, steps=2, norm="l2")
    assert type(attack).__name__ == cls
    assert getattr(attack, "norm", "L2") == "L2"
    assert type(create_attack(name, torch.nn.Linear(4, 2), 0.5, steps=2)).__name__ != "PGDL2"


def test_an_attack_without_an_l2_variant_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="no L2 variant"):
        create_attack("fgsm", torch.nn.Linear(4, 2), 0.1, norm="l2")
    doc = {
        "name": "e",
        "data": {"dataset": "digits"},
        "adversarial": {"evaluation": {"attacks": ["pgd", "fgsm", "bim"], "norm": "l2"}},
    }
    with pytest.raises(FedrobustError) as info:
        parse_scenario(doc)
    assert info.value.where == "adversarial.evaluation.norm"
    assert "fgsm, bim" in info.value.what and "pgd," not in info.value.what.split(":")[0]
    doc["adversarial"]["evaluation"]["attacks"] = ["pgd", "apgd", "autoattack"]
    assert parse_scenario(doc).adversarial.evaluation.norm == "l2"


def test_each_attack_and_budget_reports_its_progress_in_order() -> None:
    model, x, y = _model_and_data()
    seen: list[int] = []
    robust_accuracy(model, x, y, ["fgsm", "pgd"], [0.02, 0.1], steps=1, on_attack=seen.append)
    assert seen == [1, 2, 3, 4]
