"""What a study leaves: best.yaml (valid, no tune:), trials.csv, report.md and plots."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import yaml

from fedrobust.scenario import load_scenario
from fedrobust.tune import report
from fedrobust.tune.study import Search, open_study, prepare_search, run_trials

from .conftest import FakeRunner


def finished(scenario_file: Path, tmp_path: Path, trials: int, **runner: object) -> tuple[
    optuna.Study, Search
]:  # fmt: skip
    search = prepare_search(scenario_file, tmp_path / "out", pruner="none")
    study = open_study(search)
    run_trials(study, search, trials, runner=FakeRunner(**runner), say=lambda _: None,
               poll_seconds=0)  # fmt: skip
    return study, search


def test_best_yaml_is_the_file_with_the_best_values_and_no_tune_section(
    scenario_file: Path, tmp_path: Path
) -> None:
    study, search = finished(scenario_file, tmp_path, 3)
    path = report.write_best(study, search)
    assert path == search.out / "best.yaml"
    best = max(study.trials, key=lambda t: t.value)
    doc = yaml.safe_load(path.read_text())
    assert "tune" not in doc
    assert doc["train"]["optimizer"]["lr"] == best.params["train.optimizer.lr"]
    assert doc["train"]["rounds"] == 3 and doc["data"]["partition"]["num_clients"] == 3
    scenario = load_scenario(path)  # it validates, and runs as any scenario
    assert scenario.tune is None
    assert scenario.model.hidden == best.user_attrs["values"]["model.hidden"]
    assert path.read_text().startswith(f"# fedrobust tune {scenario_file}: trial {best.number}")


def test_the_table_csv_report_and_plots_cover_every_trial(
    scenario_file: Path, tmp_path: Path
) -> None:
    study, search = finished(scenario_file, tmp_path, 3)
    rows = report.trial_rows(study, search)
    assert [r["trial"] for r in rows] == [0, 1, 2]
    assert report.table_header(search) == [
        "trial", "state", "val_accuracy", "rounds", "train.optimizer.lr", "model.hidden",
        "seconds",
    ]  # fmt: skip
    assert report.table_header(search, short=True)[4:6] == ["lr", "hidden"]
    cells = report.table_cells(rows[0], search)
    assert cells[1] == "complete" and cells[3] == "3" and cells[5].startswith("[")
    with report.write_trials_csv(rows, search).open() as handle:
        table = list(csv.DictReader(handle))
    assert [float(r["val_accuracy"]) for r in table] == [t.value for t in study.trials]
    missing = report.write_plots(study, search.out, search.metric)
    assert missing == {}
    for name in report.PLOTS:
        assert (search.out / name).stat().st_size > 1000
    text = report.write_report(study, search, rows, "sampler tpe, pruner none", missing).read_text()
    assert "3 trials (3 complete, 0 pruned, 0 failed)" in text
    assert "**Best: trial" in text and "![parameter importance](importance.png)" in text
    assert "Test accuracy of its kept model: 0.4200" in text  # the fake runs' final accuracy
    assert text.count("| complete |") == 3


def test_a_small_study_reports_the_plots_it_cannot_draw(
    scenario_file: Path, tmp_path: Path
) -> None:
    study, search = finished(scenario_file, tmp_path, 1)
    missing = report.write_plots(study, search.out, search.metric)
    assert set(missing) == {"importance.png"}
    assert "two completed trials" in missing["importance.png"]
    rows = report.trial_rows(study, search)
    text = report.write_report(study, search, rows, "", missing).read_text()
    assert "_No parameter importance plot: needs at least two completed trials._" in text


def test_without_a_completed_trial_there_is_no_best_yaml(
    scenario_file: Path, tmp_path: Path
) -> None:
    study, search = finished(scenario_file, tmp_path, 2, fail=True)
    assert report.write_best(study, search) is None
    assert not (search.out / "best.yaml").exists()
    missing = report.write_plots(study, search.out, search.metric)
    assert set(missing) == {"history.png", "importance.png"}
    rows = report.trial_rows(study, search)
    text = report.write_report(study, search, rows, "", missing).read_text()
    assert "No trial completed" in text and "trial 0: RuntimeError: boom" in text
