"""metrics.json: written atomically, read back or refused with one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedrobust.cli import main
from fedrobust.errors import FedrobustError
from fedrobust.report.metrics import RunRecorder, read_metrics
from fedrobust.rundir import RunDir


def test_a_recorded_run_reads_back(tmp_path: Path) -> None:
    recorder = RunRecorder(tmp_path, {"name": "m"}, token="t")
    recorder.add_round({"round": 1, "accuracy": 0.5, "loss": float("nan")})
    doc = read_metrics(tmp_path)
    assert doc["status"] == "running" and doc["rounds"][0]["loss"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('{"status": "running", "rounds": [', "unreadable metrics"),
        ("[1, 2]", "not a JSON object"),
        ('{"status": "done", "scenario": {}, "rounds": []}', "status is 'done'"),
        ('{"status": "running", "rounds": []}', "no scenario object"),
        ('{"status": "running", "scenario": {}, "rounds": [1]}', "rounds is not a list"),
    ],
)
def test_a_malformed_metrics_json_is_one_error_naming_the_file(
    tmp_path: Path, text: str, what: str
) -> None:
    RunDir(tmp_path).metrics.write_text(text)
    with pytest.raises(FedrobustError) as info:
        read_metrics(tmp_path)
    assert info.value.where == str(RunDir(tmp_path).metrics)
    assert what in info.value.what


def test_a_missing_metrics_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FedrobustError, match="no such file"):
        read_metrics(tmp_path)


def test_the_cli_exits_2_on_a_malformed_metrics_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    RunDir(tmp_path).metrics.write_text(json.dumps({"status": "running"}))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {RunDir(tmp_path).metrics}: malformed metrics")
