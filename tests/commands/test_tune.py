"""``fedrobust tune``: refusals exit 2 before any trial; a study end to end.

The in-process tests replace each trial's ``fedrobust run`` with the fake runner of
``tests/tune/conftest.py``; one slow test runs two real trials (one of them pruned).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import fedrobust.commands.preflight as preflight_module
import fedrobust.tune.study as study_module
from fedrobust.scenario import load_scenario
from fedrobust.tune import report
from tests.cli import cli
from tests.tune.conftest import SCENARIO, FakeRunner, empty_study_db, quick_storage  # noqa: F401


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "accuracy"], "error: --metric: 'accuracy' is not a validation figure"),
        (["--metric", "test_accuracy"], "error: --metric: 'test_accuracy' is not a validation"),
        (["--pruner", "asha"], "argument --pruner: invalid choice"),
        (["--trials", "0"], "argument --trials: must be >= 1, got 0"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    message: str,
) -> None:  # fmt: skip
    argv = ["tune", str(scenario), "--out", str(tmp_path / "o"), "--trials", "2", *args]
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_a_bad_search_path_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SCENARIO.replace("train.optimizer.lr:", "train.optimiser.lr:"))
    code, _, err = cli(capsys, "tune", str(path), "--trials", "1", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "error: tune.train.optimiser.lr: train has no field 'optimiser'" in err


def test_without_optuna_the_command_exits_2_with_the_install_line(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        "fedrobust.extras.find_spec", lambda name: None if name == "optuna" else find_spec(name)
    )
    code, _, err = cli(capsys, "tune", str(scenario), "--trials", "1", "--out", str(tmp_path))
    assert code == 2
    assert "pip install 'fedrobust[tune]'" in err


def test_a_study_prints_its_table_and_writes_best_yaml(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    runner = FakeRunner()
    monkeypatch.setattr(study_module, "RunProcess", runner)
    monkeypatch.setattr(study_module, "POLL_SECONDS", 0.0)
    checked: list[Any] = []
    monkeypatch.setattr(preflight_module, "preflight", checked.append)  # the data: tested apart
    plotted: list[Path] = []
    monkeypatch.setattr(report, "write_plots", lambda study, out, metric: plotted.append(out) or {})
    out = tmp_path / "o"
    code, stdout, _ = cli(capsys, "tune", str(scenario), "--trials", "2", "--out", str(out),
                          "--pruner", "none")  # fmt: skip
    assert code == 0
    assert "tiny-tune: 2 trials" in stdout and "val_accuracy" in stdout
    assert len(runner.runs) == 2
    assert checked[0].tune is None and checked[0].name == "tiny-tune"
    assert load_scenario(out / "best.yaml").tune is None
    assert {p.name for p in out.iterdir()} >= {"study.db", "trials", "best.yaml", "report.md",
                                              "trials.csv"}  # fmt: skip
    assert plotted == [out]  # the plots themselves: tests/tune/test_report.py
    code, stdout, _ = cli(capsys, "tune", str(scenario), "--trials", "3", "--out", str(out))
    assert code == 0
    assert "resuming: 2 trials done, 1 to run" in stdout
    assert len(runner.runs) == 3


class PruneTrialOne:
    """Prunes trial 1 at its first reported round; lets every other trial finish."""

    def prune(self, study: Any, trial: Any) -> bool:
        return trial.number == 1


def _processes_in(folder: Path) -> list[str]:
    """Live processes whose working directory or command line lies under ``folder``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)) or str(folder) in command:
            found.append(f"{pid}: {command}")
    return found


@pytest.mark.slow
def test_two_real_trials_one_pruned_leave_no_process_and_a_runnable_best(tmp_path: Path) -> None:
    import optuna

    doc = yaml.safe_load(SCENARIO)
    doc["train"]["rounds"] = 2
    doc["data"]["partition"]["num_clients"] = 2
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(doc))
    search = study_module.prepare_search(path, tmp_path / "out", pruner="none")
    study = study_module.open_study(search)
    study.pruner = PruneTrialOne()  # type: ignore[assignment]
    lines: list[str] = []
    study_module.run_trials(study, search, 2, say=lines.append)
    states = [t.state for t in sorted(study.trials, key=lambda t: t.number)]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED], lines
    assert 0.0 < study.trials[0].value <= 1.0
    assert _processes_in(search.out) == []  # the pruned run stopped Flower and all it started
    best = report.write_best(study, search)
    assert best is not None and load_scenario(best).tune is None
