"""Learning-rate schedules across rounds and server-side early stopping."""

from __future__ import annotations

import pytest
import torch

from fedrobust.train import round_lr
from fedrobust.train.config import EarlyStoppingConfig, LrScheduleConfig
from fedrobust.train.early_stopping import EarlyStopping


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"name": "constant"}, [0.1] * 6),
        ({"name": "step", "step_rounds": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
        ({"name": "cosine", "min_lr": 0.0}, [0.1, 0.0904508, 0.0654508, 0.0345492, 0.0095492, 0.0]),
        (
            {"name": "warmup_cosine", "warmup_rounds": 2},
            [0.05, 0.1, 0.1, 0.0853553, 0.05, 0.0146447, 0.0][:6],
        ),
    ],
)
def test_schedules_give_the_known_rates(cfg: dict, expected: list[float]) -> None:
    total = 7 if cfg["name"] == "warmup_cosine" else 6
    rates = [round_lr(LrScheduleConfig(**cfg), 0.1, rnd, total) for rnd in range(1, 7)]
    assert rates == pytest.approx(expected, abs=1e-6)


def test_early_stopping_waits_patience_rounds_and_keeps_the_best_state() -> None:
    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(EarlyStoppingConfig(metric="accuracy", patience=2, min_delta=0.01))
    history = [0.5, 0.7, 0.705, 0.69]  # 0.705 is not a big enough gain
    stops = []
    for rnd, acc in enumerate(history, start=1):
        with torch.no_grad():
            model.weight.fill_(rnd)
        stops.append(stopper.update(rnd, {"val_accuracy": acc}, model))
    assert stops == [False, False, False, True]
    assert stopper.best_round == 2 and stopper.best_state["weight"].item() == 2.0

    again = EarlyStopping(EarlyStoppingConfig(metric="accuracy", patience=2, min_delta=0.01))
    again.load_state_dict(stopper.state_dict())
    assert again.state_dict()["best_round"] == 2


def test_loss_metric_stops_when_loss_stops_falling() -> None:
    stopper = EarlyStopping(EarlyStoppingConfig(metric="loss", patience=1))
    model = torch.nn.Linear(1, 1)
    assert not stopper.update(1, {"val_loss": 1.0}, model)
    assert not stopper.update(2, {"val_loss": 0.5}, model)
    assert stopper.update(3, {"val_loss": 0.6}, model)


def test_early_stopping_reads_validation_figures_never_the_test_set() -> None:
    stopper = EarlyStopping(EarlyStoppingConfig(metric="accuracy", patience=3))
    model = torch.nn.Linear(1, 1)
    # test accuracy rises every round while validation accuracy peaks in round 2
    rounds = [(0.5, 0.6), (0.6, 0.9), (0.7, 0.8), (0.8, 0.7)]
    for rnd, (test, val) in enumerate(rounds, start=1):
        stopper.update(rnd, {"accuracy": test, "val_accuracy": val}, model)
    assert stopper.best_round == 2 and stopper.best_value == 0.9
    # a round no client reported on (no validation figure) never counts as the best
    quiet = EarlyStopping(EarlyStoppingConfig(metric="loss", patience=2))
    assert not quiet.update(1, {"loss": 0.1, "val_loss": None}, model)
    assert quiet.best_round == 0
