"""Transfer learning: loading matching weights, freezing, resetting the head, and a
federation that starts from a previous run's model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fedrobust.apps.server.loop import run_federation

from fedrobust.errors import FedrobustError
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.models.config import ModelConfig
from fedrobust.models.transfer import freeze, keep_frozen, load_pretrained, reset_head
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.scenario import parse_scenario
from fedrobust.train import local_train
from fedrobust.train.config import TrainConfig
from tests.grid import InProcessGrid

DIGITS = InputSpec((1, 8, 8), 10)


def mlp(hidden: list[int] | None = None, **extra: Any) -> torch.nn.Module:
    return build_model(ModelConfig(name="mlp", hidden=hidden or [16], **extra), DIGITS)


def test_matching_weights_load_and_the_rest_is_reported(tmp_path: Path) -> None:
    source = mlp([16, 8])
    torch.save(source.state_dict(), tmp_path / "model.pt")
    target = mlp([16, 4])  # net.1 and the head's bias match; net.3 (16 -> 4) does not
    report = load_pretrained(target, tmp_path)  # a run directory: its model.pt
    assert report.loaded == ["net.1.weight", "net.1.bias", "net.5.bias"]
    assert report.skipped["net.3.weight"] == ([8, 16], [4, 16])
    assert report.skipped["net.5.weight"] == ([10, 8], [10, 4])
    assert torch.equal(target.state_dict()["net.1.weight"], source.state_dict()["net.1.weight"])
    summary = report.summary()
    assert summary["loaded"] == 3 and "net.3.weight [8, 16] -> [4, 16]" in summary["skipped"]
    bigger = mlp([16, 8, 8])
    report = load_pretrained(bigger, tmp_path / "model.pt")  # or the file itself
    assert report.missing == ["net.7.weight", "net.7.bias"] and not report.unused


@pytest.mark.parametrize("content", ["junk", "tensor", "nothing"])
def test_a_bad_file_or_one_matching_nothing_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "weights.pt"
    if content == "junk":
        path.write_text("not a checkpoint")
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        torch.save({"other.weight": torch.zeros(3)}, path)
    with pytest.raises(FedrobustError, match="model.init_from"):
        load_pretrained(mlp(), path)
    with pytest.raises(FedrobustError, match="model.init_from"):
        load_pretrained(mlp(), tmp_path / "absent")


def test_freeze_by_prefix_and_an_unknown_prefix_lists_the_modules() -> None:
    model = mlp([16, 8], freeze=["net.1"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["net.3.weight", "net.3.bias", "net.5.weight", "net.5.bias"]
    with pytest.raises(FedrobustError, match=r"model.freeze: 'features' .* modules are net"):
        freeze(mlp(), ["features"])
    with pytest.raises(FedrobustError, match="model.freeze: freezes every parameter"):
        freeze(mlp(), ["net"])
    assert freeze(mlp(), ["net.1."]) == 64 * 16 + 16


def test_reset_head_changes_only_the_head_and_repeats() -> None:
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert reset_head(model, seed=3) == "net.3"
    after = model.state_dict()
    assert torch.equal(after["net.1.weight"], before["net.1.weight"])
    assert not torch.equal(after["net.3.weight"], before["net.3.weight"])
    again = mlp()
    reset_head(again, seed=3)
    assert torch.equal(again.state_dict()["net.3.weight"], after["net.3.weight"])


def test_reset_head_without_init_from_is_refused() -> None:
    doc = {"name": "x", "model": {"name": "mlp", "reset_head": True}}
    with pytest.raises(FedrobustError, match="model.reset_head"):
        parse_scenario(doc)


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("dp", [None, "hooks", "fast"])
def test_frozen_parameters_do_not_move_in_local_training(dp: str | None) -> None:
    model = mlp([16, 8], freeze=["net.1"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _data()
    train = TrainConfig(
        batch_size=16, grad_clip=1.0,
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
    )  # fmt: skip
    recipe = None if dp is None else DPSGDRecipe(1.0, 1.0, grad_sample_mode=dp)
    local_train(model, x, y, train=train, num_classes=10, seed=1, dp=recipe)
    after = model.state_dict()
    assert torch.equal(after["net.1.weight"], before["net.1.weight"])
    assert torch.equal(after["net.1.bias"], before["net.1.bias"])
    assert not torch.equal(after["net.3.weight"], before["net.3.weight"])


def test_keep_frozen_restores_only_frozen_parameters() -> None:
    model = mlp(freeze=["net.1"])
    moved = {k: v + 1 for k, v in model.state_dict().items()}
    kept = keep_frozen(model, moved)
    assert torch.equal(kept["net.1.weight"], model.state_dict()["net.1.weight"])
    assert torch.equal(kept["net.3.weight"], moved["net.3.weight"])


def scenario(**model: Any) -> dict[str, Any]:
    return {
        "name": "transfer",
        "seed": 2,
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
        "model": {"name": "mlp", "hidden": [16], **model},
        "train": {"rounds": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.1}},
    }


def run(doc: dict[str, Any], out: Path) -> dict[str, Any]:
    run_federation(InProcessGrid(2), parse_scenario(doc), out)
    return json.loads((out / "metrics.json").read_text())


def test_a_federation_starts_from_a_previous_run_and_keeps_frozen_layers(
    tmp_path: Path, server_identity: None
) -> None:
    source = run(scenario(), tmp_path / "source")
    tuned = run(scenario(init_from=str(tmp_path / "source")), tmp_path / "tuned")
    assert tuned["initial"]["accuracy"] == source["final"]["accuracy"]
    assert tuned["initial"]["transfer"]["loaded"] == 4
    frozen = run(
        scenario(init_from=str(tmp_path / "source" / "model.pt"), freeze=["net.1"]),
        tmp_path / "frozen",
    )
    assert frozen["initial"]["transfer"]["frozen"] == 64 * 16 + 16
    old = torch.load(tmp_path / "source" / "model.pt", weights_only=True)
    new = torch.load(tmp_path / "frozen" / "model.pt", weights_only=True)
    assert torch.equal(new["net.1.weight"], old["net.1.weight"])
    assert torch.equal(new["net.1.bias"], old["net.1.bias"])
    assert not torch.equal(new["net.3.weight"], old["net.3.weight"])
