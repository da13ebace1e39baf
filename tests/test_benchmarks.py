"""The benchmarks' settings stay valid scenarios, and compare.py judges arms by their
intervals and seed by seed."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from fedrobust.report.summary import figure_stats
from fedrobust.scenario import parse_scenario

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
FILES = sorted((BENCHMARKS / "scenarios").rglob("*.yaml"))


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_there_are_benchmark_scenario_files() -> None:
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_every_benchmark_scenario_file_is_a_valid_scenario(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    # a sweep file wraps its scenario beside the grid (privacy/central_*.yaml)
    parse_scenario(doc["scenario"] if "grid" in doc else doc)


def _stats(mean: float, half: float | None) -> dict[str, object]:
    return {"mean": mean, "half_width": half, "values": {0: mean}}


def test_compare_calls_a_difference_only_when_the_intervals_do_not_overlap() -> None:
    compare = _module("compare")
    base = _stats(0.80, 0.05)
    assert compare.verdict(_stats(0.90, 0.04), base) == "higher"
    assert compare.verdict(_stats(0.70, 0.04), base) == "lower"
    assert compare.verdict(_stats(0.86, 0.04), base) == "no measurable difference"
    assert compare.verdict(_stats(0.99, None), base) == "-"  # one seed: no interval


def test_compare_table_has_a_row_per_arm_and_the_baseline_first() -> None:
    compare = _module("compare")
    summaries = [{"figures": {"accuracy": _stats(0.8, 0.01)}},
                 {"figures": {"accuracy": _stats(0.9, 0.01)}}]  # fmt: skip
    text = compare.table(["plain", "clip"], summaries, ["accuracy"])
    lines = text.splitlines()
    assert lines[0] == "| arm | accuracy | accuracy vs plain | paired difference in accuracy |"
    assert lines[2].startswith("| plain | 0.800 ± 0.010") and lines[2].endswith("baseline |")
    assert lines[3].endswith("higher | - |")  # one seed each: no paired interval


def test_compare_pairs_arms_seed_by_seed_where_their_intervals_overlap() -> None:
    compare = _module("compare")
    base = figure_stats({0: 0.60, 1: 0.67, 2: 0.57})  # seeds differ a lot ...
    arm = figure_stats({0: 0.83, 1: 0.92, 2: 0.84})  # ... the arm wins on each
    assert compare.verdict(arm, base) == "no measurable difference"
    diff = compare.paired(arm, base)
    assert diff["mean"] == pytest.approx(0.25) and compare.judged(diff) == "higher"
    mixed = figure_stats({0: 0.70, 1: 0.60, 2: 0.62})  # wins once, loses twice
    assert compare.judged(compare.paired(mixed, base)) == "no measurable difference"
    only_one_shared = figure_stats({2: 0.9, 5: 0.9})
    assert compare.paired_cell(compare.paired(only_one_shared, base)) == "-"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_gpu_check_is_a_valid_scenario_on_either_device(device: str) -> None:
    from fedrobust.bundled import resolve_scenario

    gpu_check = _module("gpu_check")
    for name, change in gpu_check.checks(rounds=3).items():
        raw = gpu_check.merged(yaml.safe_load(resolve_scenario(name).read_text()), change)
        raw["train"].update(device=device, rounds=3)
        parse_scenario(raw)
    deep = gpu_check.merged({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
    assert deep == {"a": {"b": 1, "c": 3}}


def test_every_continual_group_names_its_arms() -> None:
    continual = _module("continual")
    for group, pattern in continual.GROUPS.items():
        assert len(list((BENCHMARKS / "scenarios").glob(pattern))) >= 2, group


@pytest.mark.parametrize(
    "path", sorted((BENCHMARKS / "scenarios").glob("poisoning*.yaml")), ids=lambda p: p.name
)
def test_every_matrix_cell_a_poisoning_base_documents_can_run(path: Path) -> None:
    """The --attacks / --defenses a base scenario's header gives build a valid matrix."""
    from fedrobust.matrix import build_cells

    header = path.read_text()
    attacks = re.search(r"--attacks (\S+)", header)
    defenses = re.search(r"--defenses (\S+)", header)
    if attacks is None or defenses is None:
        pytest.skip("the header names no grid (benchmarks/poisoning.py's defaults)")
    cells = build_cells(parse_scenario(yaml.safe_load(header)), attacks[1].split(","),
                        defenses[1].split(","))  # fmt: skip
    assert {c.defense for c in cells} == set(defenses[1].split(","))
    if "bucketing" in path.name:  # the rules that take it run behind it
        assert all(c.scenario.defense.bucketing == 2 for c in cells
                   if c.defense in ("median", "centered_clip", "dnc", "flame"))  # fmt: skip


def _cell(attack: str, defense: str, accuracy: float, half: float) -> dict[str, object]:
    return {"attack": attack, "defense": defense, "accuracy": accuracy, "accuracy_ci95": half}


@pytest.mark.parametrize("with_fedavg", [True, False])
def test_poisoning_prints_its_table_with_or_without_a_clean_fedavg_cell(
    with_fedavg: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The summary marks cells 'below' clean FedAvg, and runs without fedavg too (it
    raised KeyError after the whole grid had run)."""
    poisoning = _module("poisoning")
    rows = [_cell("none", "median", 0.90, 0.02), _cell("ipm", "median", 0.50, 0.05)]
    if with_fedavg:
        rows += [_cell("none", "fedavg", 0.95, 0.01), _cell("ipm", "fedavg", 0.93, 0.03)]
    (tmp_path / "matrix.json").write_text(json.dumps(rows))
    monkeypatch.setattr(poisoning.subprocess, "run", lambda *a, **k: None)
    monkeypatch.setattr(sys, "argv", ["poisoning.py", "--out", str(tmp_path),
                                      "--attacks", "ipm", "--defenses", "median"])  # fmt: skip
    poisoning.main()
    out = capsys.readouterr().out
    assert "| ipm | 0.500 ± 0.050" in out
    if with_fedavg:
        assert "0.500 ± 0.050 below" in out and "clean FedAvg accuracy 0.950" in out
    else:
        assert "below |" not in out and "no clean FedAvg cell" in out


def test_scale_takes_each_ratio_within_a_repeat_and_judges_the_mean() -> None:
    scale = _module("scale")

    def rows(base: float, big: float) -> list[object]:
        return [scale.Row("10 clients", base, 20.0, 1000.0, "completed"),
                scale.Row("10000 clients", big, 25.0, 1100.0, "completed")]  # fmt: skip

    # a slow spell doubles both rows of repeat 2: the ratio stays 1.2 in each repeat
    repeats = [rows(0.2, 0.24), rows(0.4, 0.48), rows(0.2, 0.24)]
    printed = scale.table("clients", repeats)
    assert "| 10000 clients | 0.320 ± " in printed and "| 1.20 ± 0.00x |" in printed
    assert "1.10 ± 0.00x" in printed  # memory ratio
    assert ": met (worst mean ratio 1.20x over 3 repeat(s))" in scale.verdict(repeats)
    assert "NOT met" in scale.verdict([rows(0.2, 0.4)])
