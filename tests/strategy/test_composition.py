"""SCAFFOLD, FedDyn and FedNova with the other features: DP-SGD spends FedAvg's epsilon,
and continual learning and poisoning attacks run through them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.strategy.helpers import run, scenario

pytestmark = pytest.mark.usefixtures("server_identity")

DRIFT = ("scaffold", "feddyn", "fednova")
DP_SGD = {"dp": {"mode": "sample", "noise_multiplier": 1.0, "max_grad_norm": 1.0,
                 "delta": 1e-4, "reproducible": True}}  # fmt: skip


def test_dp_sgd_spends_the_same_epsilon_as_fedavg(tmp_path: Path) -> None:
    """The penalty terms join after clipping and noise and the rest is post-processing:
    the accountant sees the same mechanism, so every round's epsilon is FedAvg's."""
    eps = {}
    for name in ("fedavg", *DRIFT):
        doc = run(scenario(name, 2, privacy=DP_SGD), tmp_path / name)
        assert doc["status"] == "completed"
        eps[name] = [r["epsilon"] for r in doc["rounds"]], doc["final"]["epsilon"]
    assert eps["fedavg"][1] > 0
    for name in DRIFT:
        assert eps[name] == eps["fedavg"], name


@pytest.mark.parametrize("name", DRIFT)
def test_continual_learning_runs_through_them(tmp_path: Path, name: str) -> None:
    cl = {"setting": "class_incremental", "tasks": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]],
          "rounds_per_task": 2, "method": "ewc+replay", "replay": {"buffer_size": 20},
          "ewc": {"fisher_samples": 10}}  # fmt: skip
    iid = {"partition": {"kind": "iid", "num_clients": 5}}  # every client holds every task
    doc = run(scenario(name, 4, continual=cl, data=iid, train={"fraction_train": 1.0}), tmp_path)
    assert doc["status"] == "completed" and len(doc["rounds"]) == 4
    assert all(r["aggregated"] == 5 for r in doc["rounds"])
    assert "continual" in doc["final"]


@pytest.mark.parametrize("name", DRIFT)
@pytest.mark.parametrize("attack", [{"kind": "sign_flip", "count": 1}, {"kind": "alie", "count": 1},
                                    {"kind": "malformed", "count": 1,
                                     "malformations": ["non_finite", "missing_key"]}])  # fmt: skip
def test_attacks_run_through_them(tmp_path: Path, name: str, attack: dict) -> None:
    doc = run(scenario(name, 2, attack=attack, train={"fraction_train": 1.0}), tmp_path)
    assert doc["status"] == "completed" and len(doc["rounds"]) == 2
    honest = 4 if attack["kind"] == "malformed" else 5
    assert all(r["aggregated"] == honest for r in doc["rounds"])
