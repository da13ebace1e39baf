"""The attack registry: torchattacks' eps-bounded attacks by name; bad names and eps refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedrobust.adversarial.evaluation import attack_key, robust_accuracy
from fedrobust.attacks import check_attack_name, create_attack, known_attacks
from fedrobust.cli import main


def test_the_registry_holds_torchattacks_eps_attacks() -> None:
    names = known_attacks()
    assert {"pgd", "fgsm", "pgdl2", "ffgsm", "tpgd", "apgd", "autoattack", "square"} <= set(names)
    assert "cw" not in names and "deepfool" not in names  # no eps budget


def test_an_unknown_attack_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown attack 'pgdx'; known: apgd, apgdt"):
        check_attack_name("pgdx")


@pytest.mark.parametrize("eps", [0.0, 1.5, -0.1])
def test_budgets_outside_the_unit_interval_are_refused(eps: float) -> None:
    with pytest.raises(ValueError, match="eps must be in"):
        create_attack("pgd", torch.nn.Linear(4, 2), eps)


def test_linf_attacks_stay_within_their_budget_and_the_image_range() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    for name in ("pgd", "fgsm", "ffgsm", "apgd", "tpgd"):
        adv = create_attack(name, model, 0.1, steps=5)(x, y)
        assert float((adv - x).abs().max()) <= 0.1 + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1


def test_robust_accuracy_is_keyed_as_written_and_leaves_the_rng_alone() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x, y = torch.rand(20, 1, 8, 8).numpy(), torch.randint(0, 10, (20,)).numpy()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    figures = robust_accuracy(model, x, y, ["pgd", "fgsm"], [0.1, 0.3], steps=3)
    assert set(figures) == {"pgd@0.1", "pgd@0.3", "fgsm@0.1", "fgsm@0.3", "worst@0.1",
                            "worst@0.3", "clean@subset"}  # fmt: skip
    assert attack_key("pgd", 0.1) == "pgd@0.1"
    assert torch.equal(torch.get_rng_state(), state)
    assert figures == robust_accuracy(model, x, y, ["pgd", "fgsm"], [0.1, 0.3], steps=3)
    with pytest.raises(ValueError, match="cannot run on this data"):
        robust_accuracy(model, x, y, ["tifgsm"], [0.1])  # made for RGB images


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--attacks", "pgd,nope"], "error: --attacks: unknown attack 'nope'"),
        (["--eps", "0.1,1.5"], "error: --eps: budgets must be in (0, 1]"),
        (["--eps", "a,b"], "error: --eps: not a list of numbers"),
    ],
)
def test_evaluate_refuses_bad_attacks_and_budgets_with_exit_2(
    args: list[str], where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(tmp_path), *args]) == 2
    assert where in capsys.readouterr().err


def test_evaluate_needs_a_run_or_a_model_with_its_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "no such run directory or model file" in capsys.readouterr().err
    model = tmp_path / "m.pt"
    model.write_bytes(b"not a model")
    assert main(["evaluate", str(model)]) == 2
    assert "error: --scenario: needed" in capsys.readouterr().err
