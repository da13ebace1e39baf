"""`fedrobust compare`: run and repeat directories side by side.

Run directories are written by hand (the metrics.json layout of
:mod:`fedrobust.report.metrics`); no Flower run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedrobust.errors import FedrobustError
from fedrobust.report.compare import (
    curve,
    differences_table,
    entry_names,
    final_table,
    load_comparison,
)
from fedrobust.report.stats import mean_ci
from fedrobust.report.summary import number
from tests.cli import cli


def scenario(name: str = "base", seed: int = 0, **sections: Any) -> dict[str, Any]:
    """A scenario document like a run's (only the sections the tests vary)."""
    doc: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 4}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"rounds": 3, "optimizer": {"name": "sgd", "lr": 0.05}},
        "output": {"dir": None},
    }
    for key, value in sections.items():
        doc[key] = value
    return doc


def write_run(
    run_dir: Path,
    accuracies: list[float],
    status: str = "completed",
    scenario_doc: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A run directory: metrics.json with one row per accuracy (and ``final`` when
    completed); ``extra`` joins every round row."""
    rounds = [
        {"round": r, "accuracy": a, "loss": 1.0 - a, "balanced_accuracy": a - 0.01,
         "seconds": 1.0, "dropped": {}, **(extra or {})}
        for r, a in enumerate(accuracies, start=1)
    ]  # fmt: skip
    final = None
    if status == "completed":
        final = {**rounds[-1], "rounds_completed": len(rounds), "wall_seconds": 12.5,
                 "model_round": len(rounds)}  # fmt: skip
    doc = {
        "status": status,
        "error": "boom" if status == "failed" else None,
        "token": "t",
        "scenario": scenario_doc or scenario(),
        "data": None,
        "initial": {"round": 0, "accuracy": 0.1, "loss": 2.3},
        "rounds": rounds,
        "final": final,
    }
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(doc))
    return run_dir


def write_repeat(out: Path, runs: dict[int, list[float]], **sections: Any) -> Path:
    """A repeat directory: ``seed-<s>/metrics.json`` per seed and a summary.json."""
    for seed, accuracies in runs.items():
        write_run(out / f"seed-{seed}", accuracies, scenario_doc=scenario(seed=seed, **sections))
    (out / "summary.json").write_text(json.dumps({"seeds": sorted(runs)}))
    return out


def test_loads_a_run_and_a_repeat_directory(tmp_path: Path) -> None:
    run = write_run(tmp_path / "single", [0.5, 0.6, 0.7])
    rep = write_repeat(tmp_path / "rep", {2: [0.5, 0.8], 0: [0.4, 0.7], 1: [0.6, 0.9]})
    comparison = load_comparison([run, rep])
    single, repeat = comparison.entries
    assert (single.name, single.kind, list(single.runs)) == ("single", "run", [0])
    assert (repeat.name, repeat.kind, list(repeat.runs)) == ("rep", "repeat", [0, 1, 2])
    assert repeat.status == "3/3 seeds completed"
    assert comparison.keys == [
        "rounds_completed", "accuracy", "balanced_accuracy", "loss", "wall_seconds",
    ]  # fmt: skip
    header, rows = final_table(comparison)
    assert header[:3] == ["run", "status", "seeds"]
    assert rows[0][:4] == ["single", "completed", "1", "3"]
    assert rows[0][header.index("accuracy")] == number(0.7)


def test_names_take_parents_only_where_directory_names_repeat() -> None:
    paths = [Path("/x/a/run"), Path("/x/b/run"), Path("/x/c/other"), Path("/y/a/run")]
    assert entry_names(paths) == ["x/a/run", "b/run", "other", "y/a/run"]


def test_the_differences_are_exactly_the_fields_that_differ(tmp_path: Path) -> None:
    wide = {"name": "mlp", "hidden": [32, 32]}
    dirichlet = {"dataset": "digits", "partition": {"kind": "dirichlet", "num_clients": 4,
                                                    "alpha": 0.5}}  # fmt: skip
    first = write_run(tmp_path / "a", [0.5], scenario_doc=scenario(output={"dir": "runs/a"}))
    second = write_run(
        tmp_path / "b", [0.5], scenario_doc=scenario(model=wide, output={"dir": "runs/b"})
    )
    third = write_repeat(tmp_path / "c", {0: [0.5], 1: [0.6]}, data=dirichlet)
    comparison = load_comparison([first, second, third])
    # output.dir differs by construction and the names do not differ; the repeat's seed
    # is the list of its seeds
    assert comparison.differing == [
        "seed", "data.partition.kind", "data.partition.alpha", "model.hidden",
    ]  # fmt: skip
    header, rows = differences_table(comparison)
    assert header == ["scenario field", "a", "b", "c"]
    assert rows == [
        ["seed", "0", "0", "0, 1"],
        ["data.partition.kind", "iid", "iid", "dirichlet"],
        ["data.partition.alpha", "–", "–", "0.5"],
        ["model.hidden", "[16]", "[32, 32]", "[16]"],
    ]


def test_a_repeats_cells_and_curve_are_the_mean_and_t_interval_of_its_seeds(
    tmp_path: Path,
) -> None:
    seeds = {0: [0.50, 0.70], 1: [0.60, 0.80], 2: [0.40, 0.95]}
    run = write_run(tmp_path / "run", [0.5, 0.6])
    rep = write_repeat(tmp_path / "rep", seeds)
    comparison = load_comparison([run, rep])
    repeat = comparison.entries[1]
    finals = [accuracies[-1] for accuracies in seeds.values()]
    mean, half = mean_ci(finals)
    stats = repeat.figures["accuracy"]
    assert stats["mean"] == pytest.approx(mean)
    assert stats["half_width"] == pytest.approx(half)
    header, rows = final_table(comparison)
    assert rows[1][header.index("accuracy")] == f"{number(mean)} ± {number(half)}"
    drawn = curve(repeat, "accuracy")
    assert drawn is not None
    assert drawn["rounds"] == [0, 1, 2]  # round 0: the initial model
    assert "band: 95 % CI" in drawn["label"]
    first_mean, first_half = mean_ci([0.50, 0.60, 0.40])
    assert drawn["values"][1] == pytest.approx(first_mean)
    assert drawn["low"][1] == pytest.approx(first_mean - first_half)
    assert drawn["high"][1] == pytest.approx(first_mean + first_half)
    assert curve(comparison.entries[0], "accuracy")["values"] == [0.1, 0.5, 0.6]


def test_failed_runs_are_compared_and_failed_seeds_left_out_of_the_mean(
    tmp_path: Path,
) -> None:
    failed = write_run(tmp_path / "failed", [0.3, 0.4], status="failed")
    rep = write_repeat(tmp_path / "rep", {0: [0.6], 1: [0.8]})
    write_run(tmp_path / "rep" / "seed-2", [0.1], status="running")
    comparison = load_comparison([failed, rep])
    header, rows = final_table(comparison)
    assert rows[0][1] == "failed"
    assert rows[0][header.index("accuracy")] == number(0.4)  # its last round
    assert rows[0][header.index("rounds_completed")] == "2"
    assert rows[0][header.index("wall_seconds")] == "–"
    assert rows[1][1] == "2/3 seeds completed (seed 2 running)"
    assert rows[1][2] == "2"
    assert comparison.entries[1].figures["accuracy"]["values"] == {0: 0.6, 1: 0.8}


def test_a_nested_metric_and_epsilon_join_the_table(tmp_path: Path) -> None:
    robust = {"robust_accuracy": {"pgd@0.1": 0.3}, "epsilon": 2.0}
    first = write_run(tmp_path / "a", [0.5, 0.6], extra=robust)
    second = write_run(tmp_path / "b", [0.5, 0.7])
    comparison = load_comparison([first, second], metric="robust_accuracy.pgd@0.1")
    assert comparison.keys[4:] == ["robust_accuracy.pgd@0.1", "epsilon", "wall_seconds"]
    header, rows = final_table(comparison)
    assert [row[header.index("epsilon")] for row in rows] == ["2", "–"]
    assert curve(comparison.entries[1], "robust_accuracy.pgd@0.1") is None


def test_the_cli_writes_the_page_the_plot_and_the_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    first = write_run(tmp_path / "x" / "run", [0.5, 0.6])
    second = write_repeat(tmp_path / "y" / "run", {0: [0.6, 0.7], 1: [0.7, 0.8]},
                          train={"rounds": 2, "optimizer": {"name": "sgd", "lr": 0.1}})  # fmt: skip
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "compare", str(first), str(second), "--out", str(out),
                            "--metric", "loss")  # fmt: skip
    assert (code, err) == (0, "")
    assert "x/run" in stdout and "y/run" in stdout and "0.75 ± " in stdout
    page = (out / "compare.html").read_text()
    assert "data:image/png;base64," in page and "train.optimizer.lr" in page
    assert (out / "compare.png").stat().st_size > 0
    markdown = (out / "compare.md").read_text()
    assert "| train.rounds | 3 | 2 |" in markdown
    assert "| train.optimizer.lr | 0.05 | 0.1 |" in markdown
    assert "| x/run | completed | 1 | 2 | 0.6 |" in markdown


def test_bad_input_exits_2_naming_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", [0.5])
    other = write_run(tmp_path / "other", [0.6])
    out = str(tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(capsys, "compare", str(run), str(empty), "--out", out)
    assert code == 2
    assert err.startswith(f"error: {empty}: not a run directory")

    code, _, err = cli(capsys, "compare", str(run), str(tmp_path / "nowhere"), "--out", out)
    assert (code, err) == (2, f"error: {tmp_path / 'nowhere'}: no such directory\n")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text(json.dumps({"status": "done", "rounds": []}))
    code, _, err = cli(capsys, "compare", str(run), str(broken), "--out", out)
    assert code == 2
    assert err.startswith(f"error: {broken / 'metrics.json'}: malformed metrics")

    code, _, err = cli(capsys, "compare", str(run), str(other), "--metric", "f1", "--out", out)
    assert code == 2
    assert err.startswith("error: --metric: no run has 'f1' in its rounds; they have: accuracy,")
    assert "balanced_accuracy" in err and "loss" in err

    code, _, err = cli(capsys, "compare", str(run), "--out", out)
    assert (code, err) == (2, "error: DIR: give at least 2 directories to compare, got 1\n")
    assert not (tmp_path / "out").exists()


def test_a_directory_given_twice_is_refused(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [0.5])
    with pytest.raises(FedrobustError, match="given twice"):
        load_comparison([run, tmp_path / "." / "run"])
