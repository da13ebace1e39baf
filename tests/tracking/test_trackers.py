"""TensorBoard and MLflow end to end on the in-process grid: what a run writes parses
with their own readers, round by round; a resume continues the same records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fedrobust.apps.server.loop import run_federation

from fedrobust.scenario import parse_scenario
from fedrobust.tracking import TENSORBOARD_DIR, TRACKING_FILE
from tests.grid import InProcessGrid

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def scenario(store: Path, rounds: int = 2) -> dict[str, Any]:
    return {
        "name": "tracked",
        "seed": 5,
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"rounds": rounds, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.1}},
        "output": {
            "tensorboard": True,
            "mlflow": {"tracking_uri": f"file:{store}", "experiment": "t"},
        },
    }


def run(doc: dict[str, Any], out: Path, resume: bool = False) -> dict[str, Any]:
    run_federation(InProcessGrid(3), parse_scenario(doc), out, resume=resume)
    return json.loads((out / "metrics.json").read_text())


def events(out: Path) -> EventAccumulator:
    acc = EventAccumulator(
        str(out / TENSORBOARD_DIR), size_guidance={"scalars": 0, "histograms": 0}
    )
    acc.Reload()
    return acc


def mlflow_runs(store: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[MlflowClient, list[Any]]:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(f"file:{store}")
    experiment = client.get_experiment_by_name("t")
    assert experiment is not None
    return client, client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """A 2-round run with both trackers: its directory, its MLflow store, its metrics."""
    from flwr.supercore.task_identity import TaskIdentity

    old = TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    root = tmp_path_factory.mktemp("tracked")
    try:
        doc = run(scenario(root / "mlruns"), root / "run")
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = old
    return root / "run", root / "mlruns", doc


def test_tensorboard_holds_every_round_and_the_clients_histograms(
    tracked: tuple[Path, Path, dict[str, Any]],
) -> None:
    out, _, doc = tracked
    acc = events(out)
    accuracy = acc.Scalars("accuracy")
    assert [e.step for e in accuracy] == [0, 1, 2]  # 0: the initial model
    expected = [doc["initial"]["accuracy"]] + [row["accuracy"] for row in doc["rounds"]]
    assert [e.value for e in accuracy] == pytest.approx(expected, abs=1e-6)  # float32
    tags = acc.Tags()
    assert {"loss", "balanced_accuracy", "per_class_recall/0", "seconds"} <= set(tags["scalars"])
    assert "clients/train_loss" in tags["histograms"]
    histogram = acc.Histograms("clients/num_examples")
    assert [h.step for h in histogram] == [1, 2]
    assert histogram[0].histogram_value.num == 3  # one value per client


def test_mlflow_holds_the_params_each_round_and_the_files(
    tracked: tuple[Path, Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, store, doc = tracked
    client, runs = mlflow_runs(store, monkeypatch)
    assert len(runs) == 1
    mlrun = runs[0]
    assert mlrun.info.status == "FINISHED"
    assert mlrun.info.run_name == "run"  # the run directory's name
    assert mlrun.data.params["train.rounds"] == "2"
    assert mlrun.data.params["model.hidden"] == "[16]"
    assert mlrun.data.tags["fedrobust.scenario"] == "tracked"
    history = client.get_metric_history(mlrun.info.run_id, "accuracy")
    assert [m.step for m in history] == [0, 1, 2]
    expected = [doc["initial"]["accuracy"]] + [row["accuracy"] for row in doc["rounds"]]
    assert [m.value for m in history] == pytest.approx(expected)
    assert "per_class_recall/9" in mlrun.data.metrics
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"report.html", "metrics.json", "model.pt", "curves.png"} <= artifacts
    record = json.loads((out / TRACKING_FILE).read_text())["mlflow"]
    assert record == {"tracking_uri": f"file:{store}", "run_id": mlrun.info.run_id}


@pytest.mark.usefixtures("server_identity")
def test_a_resumed_run_continues_the_same_records_a_fresh_one_starts_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, out = tmp_path / "mlruns", tmp_path / "run"
    run(scenario(store, rounds=1), out)
    doc = run(scenario(store, rounds=2), out, resume=True)
    assert [row["round"] for row in doc["rounds"]] == [1, 2]
    client, runs = mlflow_runs(store, monkeypatch)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(runs[0].info.run_id, "accuracy")
    assert [m.step for m in history] == [0, 1, 2]
    assert [m.value for m in history][1:] == pytest.approx([r["accuracy"] for r in doc["rounds"]])
    assert [e.step for e in events(out).Scalars("accuracy")] == [0, 1, 2]
    # a fresh run in the directory starts fresh records: its own curves, a new MLflow run
    run(scenario(store, rounds=1), out)
    assert [e.step for e in events(out).Scalars("accuracy")] == [0, 1]
    assert len(mlflow_runs(store, monkeypatch)[1]) == 2


def test_a_resume_hides_the_rounds_an_interrupted_run_logged_after_its_checkpoint(
    tmp_path: Path,
) -> None:
    from fedrobust.tracking.tensorboard import TensorBoardTracker

    first = TensorBoardTracker(tmp_path, resumed_after=0)
    for rnd in range(4):  # rounds 2 and 3 logged, the checkpoint holds round 1
        first.log_round({"round": rnd, "accuracy": rnd / 10})
    first.close(tmp_path, "failed")
    again = TensorBoardTracker(tmp_path, resumed_after=1)
    for rnd in (2, 3):
        again.log_round({"round": rnd, "accuracy": rnd / 100})
    again.close(tmp_path, "completed")
    accuracy = events(tmp_path).Scalars("accuracy")
    assert [(e.step, round(e.value, 3)) for e in accuracy] == [
        (0, 0),
        (1, 0.1),
        (2, 0.02),
        (3, 0.03),
    ]
