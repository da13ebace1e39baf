"""Running a study with a fake trial runner: scoring, pruning, failures, resuming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from fedrobust.errors import FedrobustError
from fedrobust.tune.study import (
    INTERRUPTED,
    Search,
    build_pruner,
    counted_trials,
    open_study,
    prepare_search,
    run_trials,
    score,
    study_lock,
)

from .conftest import FakeRun, FakeRunner, write_scenario


def search_in(scenario_file: Path, tmp_path: Path, **kwargs: Any) -> Search:
    return prepare_search(scenario_file, tmp_path / "out", **kwargs)


def run(study: optuna.Study, search: Search, trials: int, runner: Any, **kwargs: Any) -> list[str]:
    lines: list[str] = []
    run_trials(study, search, trials, runner=runner, say=lines.append, poll_seconds=0, **kwargs)
    return lines


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]


def test_the_metric_must_be_a_validation_figure(scenario_file: Path, tmp_path: Path) -> None:
    with pytest.raises(FedrobustError) as info:
        search_in(scenario_file, tmp_path, metric="accuracy")
    assert info.value.where == "--metric"
    assert "not a validation figure" in info.value.what
    assert search_in(scenario_file, tmp_path, metric="val_loss").direction == "minimize"
    assert search_in(scenario_file, tmp_path).metric == "val_accuracy"  # tune.metric default


def test_a_search_needs_a_tune_section_and_a_validation_split(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, {"train.rounds": {"int": [1, 3]}})
    doc = yaml.safe_load(path.read_text())
    del doc["tune"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(FedrobustError, match="has no tune: section"):
        prepare_search(path)
    path = write_scenario(tmp_path, {"train.rounds": {"int": [1, 3]}},
                          data={"dataset": "digits", "val_fraction": 0.0})  # fmt: skip
    with pytest.raises(FedrobustError) as info:
        prepare_search(path)
    assert info.value.where == "data.val_fraction"


def test_a_finished_run_scores_the_validation_figure_of_the_model_it_kept() -> None:
    rows = [{"round": r, "val_accuracy": v, "accuracy": 0.99} for r, v in [(1, 0.6), (2, 0.8),
                                                                             (3, 0.7)]]  # fmt: skip
    assert score({"rounds": rows, "final": {"model_round": 3}}, "val_accuracy") == 0.7
    assert score({"rounds": rows, "final": {"model_round": 2}}, "val_accuracy") == 0.8
    stopped = {"model_round": 2, "best_val_accuracy": 0.81}  # early stopping on this figure
    assert score({"rounds": rows, "final": stopped}, "val_accuracy") == 0.81
    rows[2]["val_accuracy"] = None  # no client replied in the kept round: the last figure
    assert score({"rounds": rows, "final": {"model_round": 3}}, "val_accuracy") == 0.8
    assert score({"rounds": rows, "final": {}}, "val_loss") is None  # never the test figure


def test_trials_complete_with_their_scores_and_values(scenario_file: Path, tmp_path: Path) -> None:
    search = search_in(scenario_file, tmp_path)
    runner = FakeRunner()
    with study_lock(search.out):
        study = open_study(search)
        lines = run(study, search, 3, runner)
    assert states(study) == ["COMPLETE"] * 3
    for trial, fake in zip(sorted(study.trials, key=lambda t: t.number), runner.runs, strict=True):
        assert trial.value == pytest.approx(fake.rows[-1]["val_accuracy"])  # not "accuracy"
        assert trial.user_attrs["values"]["train.optimizer.lr"] == fake.values["lr"]
        assert trial.user_attrs["values"]["model.hidden"] == fake.values["hidden"]
        assert sorted(trial.intermediate_values) == [1, 2, 3]
        assert trial.user_attrs["run_dir"] == f"trials/{trial.number:03d}"
        assert (search.out / "trials" / f"{trial.number:03d}" / "trial.yaml").is_file()
    assert any("val_accuracy" in line for line in lines)


def test_a_pruned_trial_is_stopped_after_the_round_the_pruner_rejects(
    scenario_file: Path, tmp_path: Path
) -> None:
    search = search_in(scenario_file, tmp_path)
    runner = FakeRunner(curve=lambda run, rnd: 0.9 if run.number % 2 == 0 else 0.1)
    study = open_study(search)
    study.pruner = optuna.pruners.ThresholdPruner(lower=0.5)
    lines = run(study, search, 4, runner)
    assert states(study) == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert [r.stopped for r in runner.runs] == [False, True, False, True]
    assert [len(r.rows) for r in runner.runs] == [3, 1, 3, 1]  # stopped before round 2
    assert sorted(study.trials[1].intermediate_values) == [1]
    assert "trial 1: pruned after round 1 (val_accuracy 0.1000)" in lines


def test_the_median_pruner_stops_a_trial_behind_the_others_from_round_two(
    scenario_file: Path, tmp_path: Path
) -> None:
    search = search_in(scenario_file, tmp_path)
    assert isinstance(build_pruner("median", 3), optuna.pruners.MedianPruner)
    runner = FakeRunner(curve=lambda run, rnd: 0.9 if run.number < 3 else 0.2)
    study = open_study(search)  # pruner: median (the scenario's tune.pruner default)
    run(study, search, 4, runner)
    assert states(study) == ["COMPLETE"] * 3 + ["PRUNED"]
    assert sorted(study.trials[3].intermediate_values) == [1, 2]  # warm-up: round 1 is kept


def test_no_pruner_lets_every_trial_finish(scenario_file: Path, tmp_path: Path) -> None:
    search = search_in(scenario_file, tmp_path, pruner="none")
    runner = FakeRunner(curve=lambda run, rnd: 0.9 if run.number < 3 else 0.2)
    study = open_study(search)
    run(study, search, 4, runner)
    assert states(study) == ["COMPLETE"] * 4


def test_a_failed_run_is_a_failed_trial_with_its_error(scenario_file: Path, tmp_path: Path) -> None:
    search = search_in(scenario_file, tmp_path)
    study = open_study(search)
    lines = run(study, search, 2, FakeRunner(fail=True))
    assert states(study) == ["FAIL", "FAIL"]
    assert study.trials[0].user_attrs["error"] == "RuntimeError: boom"
    assert "trial 0: failed: RuntimeError: boom" in lines
    assert counted_trials(study) == 2  # they count: a study of failing trials ends


def test_a_refused_combination_fails_the_trial_without_starting_it(tmp_path: Path) -> None:
    path = write_scenario(  # each value is valid alone; nesterov needs sgd
        tmp_path,
        {"train.optimizer.name": {"choice": ["adam", "adamw"]},
         "train.optimizer.lr": {"loguniform": [0.001, 0.1]}},
        train={"rounds": 2, "optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True}},
    )  # fmt: skip
    with pytest.raises(FedrobustError) as info:  # caught before the first trial
        prepare_search(path, tmp_path / "o")
    assert info.value.where == "tune.train.optimizer.name"
    path = write_scenario(
        tmp_path,
        {"train.optimizer.name": {"choice": ["sgd", "adam"]},
         "train.optimizer.nesterov": {"choice": [False, True]}},
    )  # fmt: skip
    search = prepare_search(path, tmp_path / "o2")  # each value is valid with the file's
    study = open_study(search)
    runner = FakeRunner()
    run(study, search, 8, runner)
    refused = [t for t in study.trials if "error" in t.user_attrs]
    assert refused and all("train.optimizer.nesterov" in t.user_attrs["error"] for t in refused)
    assert all(t.params["train.optimizer.name"] == "adam" for t in refused)
    assert all("run_dir" not in t.user_attrs for t in refused)
    assert len(runner.runs) == 8 - len(refused)


def test_a_resumed_study_adds_trials_up_to_the_total(scenario_file: Path, tmp_path: Path) -> None:
    search = search_in(scenario_file, tmp_path)
    first = FakeRunner()
    run(open_study(search), search, 2, first)
    again = FakeRunner()
    study = open_study(search)
    assert counted_trials(study) == 2
    run(study, search, 5, again)
    assert len(again.runs) == 3
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    lrs = [t.params["train.optimizer.lr"] for t in study.trials]
    assert len(set(lrs)) == 5  # the resumed sampler does not replay the first values
    run(open_study(search), search, 5, again)  # already 5: nothing more
    assert len(again.runs) == 3


def test_a_study_resumes_only_on_the_same_scenario_and_metric(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, {"train.optimizer.lr": {"loguniform": [0.001, 0.1]}})
    out = tmp_path / "o"
    run(open_study(prepare_search(path, out)), prepare_search(path, out), 1, FakeRunner())
    with pytest.raises(FedrobustError) as info:
        open_study(prepare_search(path, out, metric="val_loss"))
    assert info.value.where == "--metric"
    changed = write_scenario(tmp_path, {"train.optimizer.lr": {"loguniform": [0.001, 0.1]}},
                             seed=4)  # fmt: skip
    with pytest.raises(FedrobustError, match="a different scenario"):
        open_study(prepare_search(changed, out))
    wider = write_scenario(tmp_path, {"train.optimizer.lr": {"loguniform": [0.001, 0.3]}})
    open_study(prepare_search(wider, out))  # a changed search space is fine


class Interrupt(FakeRun):
    def poll(self) -> int | None:
        if self.number == 1 and len(self.rows) == 1:
            raise KeyboardInterrupt
        return super().poll()


def test_an_interrupted_tune_stops_its_trials_and_runs_them_again(
    scenario_file: Path, tmp_path: Path
) -> None:
    search = search_in(scenario_file, tmp_path)
    started: list[FakeRun] = []
    study = open_study(search)

    def runner(scenario_file: Path, run_dir: Path) -> Interrupt:
        return Interrupt(scenario_file, run_dir, lambda r, n: 0.8, False, started)

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, search, 3, jobs=2, poll_seconds=0, say=lambda _: None, runner=runner)
    assert [r.stopped for r in started] == [True, True]
    assert states(study) == ["FAIL", "FAIL"]
    assert study.user_attrs[INTERRUPTED] == [0, 1]
    assert counted_trials(study) == 0
    runner = FakeRunner()
    run(open_study(search), search, 3, runner)
    assert len(runner.runs) == 3


def test_trials_a_killed_tune_left_running_are_failed_on_resume(
    scenario_file: Path, tmp_path: Path
) -> None:
    search = search_in(scenario_file, tmp_path)
    study = open_study(search)
    study.ask()  # as a tune that was SIGKILLed leaves it
    study = open_study(search)
    assert states(study) == ["FAIL"]
    assert counted_trials(study) == 0


def test_one_tune_at_a_time_per_directory(tmp_path: Path) -> None:
    with study_lock(tmp_path), pytest.raises(FedrobustError, match="another `fedrobust tune`"):
        with study_lock(tmp_path):
            pass


def test_parallel_jobs_run_trials_side_by_side(scenario_file: Path, tmp_path: Path) -> None:
    search = search_in(scenario_file, tmp_path, pruner="none")
    runner = FakeRunner()
    study = open_study(search)
    run(study, search, 4, runner, jobs=3)
    assert states(study) == ["COMPLETE"] * 4
    assert all(t.value is not None for t in study.trials)
    assert TrialState.RUNNING not in {t.state for t in study.trials}
