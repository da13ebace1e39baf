"""A fake trial runner: it writes a run's metrics.json round by round, without Flower."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

SCENARIO = """\
name: tiny-tune
seed: 3
data:
  dataset: digits
  partition: {kind: iid, num_clients: 3}
model: {name: mlp, hidden: [16]}
train:
  rounds: 3
  optimizer: {name: sgd, lr: 0.02}
tune:
  train.optimizer.lr: {loguniform: [0.001, 0.3]}
  model.hidden: {choice: [[16], [32, 16]]}
"""


def by_lr(run: FakeRun, rnd: int) -> float:
    """Best near lr 0.03, rising over rounds."""
    distance = abs(math.log10(run.values["lr"]) - math.log10(0.03))
    return max(0.05, 0.95 - distance / 3) * (0.7 + 0.1 * rnd)


class FakeRun:
    """A TrialProcess that writes one more round of metrics.json at each poll.

    Its validation accuracy comes from ``curve(run, round)``; ``fail`` makes the run end
    with an error after its first round.
    """

    def __init__(
        self, scenario_file: Path, run_dir: Path, curve: Any, fail: bool, log: list[FakeRun]
    ) -> None:
        doc = yaml.safe_load(scenario_file.read_text())
        self.number = int(run_dir.name)
        self.values = {"lr": doc["train"]["optimizer"]["lr"], "hidden": doc["model"]["hidden"]}
        self.rounds_total = doc["train"]["rounds"]
        self.run_dir, self.curve, self.fail = run_dir, curve, fail
        self.rows: list[dict[str, Any]] = []
        self.code: int | None = None
        self.stopped = False
        log.append(self)

    def _write(self, status: str, **extra: Any) -> None:
        doc = {"status": status, "rounds": self.rows, **extra}
        (self.run_dir / "metrics.json").write_text(json.dumps(doc))

    def poll(self) -> int | None:
        if self.code is not None or self.stopped:
            return self.code
        if self.fail and self.rows:
            self._write("failed", error="RuntimeError: boom")
            self.code = 1
        elif len(self.rows) < self.rounds_total:
            rnd = len(self.rows) + 1
            value = self.curve(self, rnd)
            self.rows.append({"round": rnd, "accuracy": 0.5, "val_accuracy": value,
                              "val_loss": 1 - value})  # fmt: skip
            self._write("running")
        else:
            final = {"model_round": self.rounds_total, "accuracy": 0.42, "wall_seconds": 0.1}
            self._write("completed", final=final)
            self.code = 0
            return None  # the run exits at the next look
        return None

    def stop(self) -> None:
        self.stopped = True
        self.code = -2

    def last_words(self) -> str:
        return "the last line"


class FakeRunner:
    """Starts :class:`FakeRun` s; ``runs`` lists them in start order."""

    def __init__(self, curve: Any = by_lr, fail: bool = False) -> None:
        self.curve, self.fail = curve, fail
        self.runs: list[FakeRun] = []

    def __call__(self, scenario_file: Path, run_dir: Path) -> FakeRun:
        return FakeRun(scenario_file, run_dir, self.curve, self.fail, self.runs)


@pytest.fixture(scope="session")
def empty_study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study.db with Optuna's tables and no study (creating the tables takes seconds)."""
    path = tmp_path_factory.mktemp("optuna") / "study.db"
    optuna.storages.RDBStorage(f"sqlite:///{path}")
    return path


@pytest.fixture(autouse=True)
def quick_storage(monkeypatch: pytest.MonkeyPatch, empty_study_db: Path) -> Iterator[None]:
    """A new sqlite study starts as a copy of :func:`empty_study_db`: the same storage,
    without the seconds of schema creation per test."""
    create = optuna.create_study

    def create_study(*args: Any, storage: Any = None, **kwargs: Any) -> optuna.Study:
        if isinstance(storage, str) and storage.startswith("sqlite:///"):
            target = Path(storage.removeprefix("sqlite:///"))
            if not target.exists():
                shutil.copyfile(empty_study_db, target)
        return create(*args, storage=storage, **kwargs)

    monkeypatch.setattr(optuna, "create_study", create_study)
    yield


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO)
    return path


def write_scenario(tmp_path: Path, tune: dict[str, Any], **changes: Any) -> Path:
    """The tiny scenario with another tune: section (and top-level changes)."""
    doc = yaml.safe_load(SCENARIO)
    doc["tune"] = tune
    doc.update(changes)
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
