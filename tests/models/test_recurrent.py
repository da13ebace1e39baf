"""GRU and LSTM from nn.Linear cells: shapes, PyTorch's equations, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fedrobust.apps.server.loop import run_federation
from torch import nn

from fedrobust.models import InputSpec, create_model
from fedrobust.models.build import build_model
from fedrobust.models.config import ModelConfig
from fedrobust.models.recurrent import RecurrentLayer
from fedrobust.scenario import parse_scenario
from tests.grid import InProcessGrid

SPEC = InputSpec((7, 5), 4)


@pytest.mark.parametrize("name", ["gru", "lstm"])
@pytest.mark.parametrize(
    "options",
    [{}, {"hidden": [6, 3]}, {"hidden": [6], "bidirectional": True, "dropout": 0.2}],
    ids=["default", "stacked", "bidirectional"],
)
def test_output_is_one_logit_row_per_sequence(name: str, options: dict) -> None:
    model = create_model(name, SPEC, **options)
    assert model(torch.rand(3, 7, 5)).shape == (3, 4)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_layer_computes_what_torch_recurrent_layers_compute(kind: str) -> None:
    torch.manual_seed(0)
    ours = RecurrentLayer(kind, 5, 6)
    theirs = (nn.GRU if kind == "gru" else nn.LSTM)(5, 6, batch_first=True)
    with torch.no_grad():
        theirs.weight_ih_l0.copy_(ours.input.weight)
        theirs.bias_ih_l0.copy_(ours.input.bias)
        theirs.weight_hh_l0.copy_(ours.recurrent.weight)
        theirs.bias_hh_l0.copy_(ours.recurrent.bias)
    x = torch.rand(2, 7, 5)
    assert torch.allclose(ours(x), theirs(x)[0], atol=1e-6)


def test_the_backward_direction_reads_the_sequence_reversed() -> None:
    torch.manual_seed(0)
    layer = RecurrentLayer("gru", 5, 6, reverse=True)
    forward = RecurrentLayer("gru", 5, 6)
    forward.load_state_dict(layer.state_dict())
    x = torch.rand(2, 7, 5)
    assert torch.allclose(layer(x), forward(x.flip(1)).flip(1), atol=1e-6)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_images_are_refused_with_the_setting_that_reads_them(name: str) -> None:
    with pytest.raises(ValueError, match=r"sequence inputs \(T, F\).*data.sequence: rows"):
        create_model(name, InputSpec((1, 28, 28), 10))
    with pytest.raises(ValueError, match="sequence inputs"):
        create_model(name, InputSpec((64,), 10))


def test_bidirectional_is_a_model_field_only_recurrent_models_take() -> None:
    model = build_model(ModelConfig(name="lstm", hidden=[4], bidirectional=True), SPEC)
    assert model(torch.rand(2, 7, 5)).shape == (2, 4)
    with pytest.raises(ValueError, match="does not apply to model 'mlp'"):
        ModelConfig(name="mlp", bidirectional=True)
    with pytest.raises(ValueError, match="does not apply to model 'gru'"):
        ModelConfig(name="gru", channels=[4])


def test_a_federation_of_gru_clients_trains_on_digits_read_row_by_row_under_dp_sgd(
    tmp_path: Path, server_identity: None
) -> None:
    doc = {
        "name": "gru-rows",
        "seed": 1,
        "data": {
            "dataset": "digits",
            "sequence": "rows",
            "partition": {"kind": "iid", "num_clients": 2},
        },
        "model": {"name": "gru", "hidden": [16]},
        "train": {"rounds": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.02}},
        "privacy": {
            "dp": {
                "mode": "sample",
                "noise_multiplier": 0.5,
                "max_grad_norm": 1.0,
                "reproducible": True,
            }  # seed-derived noise: the same figures every run
        },
    }
    run_federation(InProcessGrid(2), parse_scenario(doc), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["final"]["accuracy"] > 0.2  # 10 classes: chance is 0.1
    assert metrics["final"]["epsilon"] > 0
