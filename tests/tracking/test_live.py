"""Trackers follow the run live: each round reaches them once metrics.json holds it,
before the next round trains; one that fails is dropped and the run goes on; they are
closed after the report, as completed or failed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import fedrobust.apps.server.loop as server_loop
import pytest
from fedrobust.apps.server.loop import run_federation
from flwr.app import Message

import fedrobust.report.metrics
from fedrobust.errors import FedrobustError
from fedrobust.report.metrics import RunRecorder
from fedrobust.scenario import parse_scenario
from fedrobust.tracking import Tracker
from tests.grid import InProcessGrid

pytestmark = pytest.mark.usefixtures("server_identity")

SCENARIO = {
    "name": "tracked",
    "seed": 5,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"rounds": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.1}},
}


class Recording(Tracker):
    """Notes each round it gets (and how many rounds metrics.json held then) and its close."""

    name = "recording"

    def __init__(self, events: list[tuple[Any, ...]], run_dir: Path) -> None:
        self.events = events
        self.run_dir = run_dir

    def log_round(self, figures: dict[str, Any]) -> None:
        saved = json.loads((self.run_dir / "metrics.json").read_text())["rounds"]
        self.events.append(("logged", figures["round"], len(saved)))

    def close(self, run_dir: Path, status: str) -> None:
        self.events.append(("closed", status, (run_dir / "report.html").exists()))


class Broken(Tracker):
    """Fails on its first round."""

    name = "broken"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def log_round(self, figures: dict[str, Any]) -> None:
        self.calls.append(f"round {figures['round']}")
        raise RuntimeError("tracking server gone")

    def close(self, run_dir: Path, status: str) -> None:
        self.calls.append(status)


class WatchedGrid(InProcessGrid):
    """Notes each training message's round as it is sent."""

    def __init__(self, events: list[tuple[Any, ...]]) -> None:
        super().__init__(3)
        self.events = events

    def send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        for msg in messages:
            if msg.metadata.message_type == "train":
                self.events.append(("train", int(msg.content["config"]["server-round"])))
        return super().send_and_receive(messages, timeout)


def test_each_round_reaches_the_trackers_before_the_next_one_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    events: list[tuple[Any, ...]] = []
    broken = Broken()
    opened: list[int] = []

    def fake_open(scenario: Any, run_dir: Path, resumed_after: int) -> list[Tracker]:
        opened.append(resumed_after)
        return [broken, Recording(events, run_dir)]

    monkeypatch.setattr(fedrobust.report.metrics, "open_trackers", fake_open)
    with caplog.at_level(logging.WARNING, logger="fedrobust.tracking"):
        run_federation(WatchedGrid(events), parse_scenario(SCENARIO), out)
    assert opened == [0]
    trained = [event for event in events if event[0] == "train"]
    assert [event for event in events if event[0] != "train"][:1] == [("logged", 0, 0)]
    logged = [event for event in events if event[0] != "train"][1:]
    assert logged == [("logged", 1, 1), ("logged", 2, 2), ("closed", "completed", True)]
    # round 1 was logged (and saved) after its clients trained, before round 2's trained
    order = [event[:2] for event in events]
    assert order.index(("logged", 1)) > order.index(trained[0][:2])
    assert order.index(("logged", 1)) < order.index(("train", 2))
    # the broken tracker: one failure, one warning, closed as failed, never called again
    assert broken.calls == ["round 0", "failed"]
    assert caplog.text.count("broken: failed") == 1
    assert json.loads((out / "metrics.json").read_text())["status"] == "completed"


def test_a_failed_run_closes_its_trackers_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[Any, ...]] = []
    opened = [Recording(events, tmp_path / "run")]
    monkeypatch.setattr(fedrobust.report.metrics, "open_trackers", lambda s, d, r: opened)

    def no_disk(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(server_loop, "save_model", no_disk)
    doc = {**SCENARIO, "train": {**SCENARIO["train"], "rounds": 1}}
    with pytest.raises(OSError, match="disk full"):
        run_federation(InProcessGrid(3), parse_scenario(doc), tmp_path / "run")
    assert events[-1] == ("closed", "failed", True)  # after the best-effort report
    assert [event[0] for event in events].count("closed") == 1


def test_the_recorder_hands_on_rounds_after_saving_and_drops_a_failing_tracker(
    tmp_path: Path,
) -> None:
    events: list[tuple[Any, ...]] = []
    broken = Broken()
    recorder = RunRecorder(tmp_path, {"name": "x"}, trackers=[broken, Recording(events, tmp_path)])
    recorder.add_round({"round": 1, "accuracy": 0.5, "loss": 1.0})
    recorder.add_round({"round": 2, "accuracy": 0.6, "loss": 0.9})
    assert events == [("logged", 1, 1), ("logged", 2, 2)]
    assert broken.calls == ["round 1", "failed"]
    assert [t.name for t in recorder.trackers] == ["recording"]
    resumed = RunRecorder.resume(tmp_path, {"name": "x"}, 1, trackers=[Recording(events, tmp_path)])
    resumed.add_round({"round": 2, "accuracy": 0.7, "loss": 0.8})
    assert events[-1] == ("logged", 2, 2)


def test_trackers_opened_for_a_resume_with_no_metrics_are_closed_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        fedrobust.report.metrics, "open_trackers", lambda s, d, r: [Recording(events, d)]
    )
    with pytest.raises(FedrobustError, match="metrics.json: no such file"):
        RunRecorder.start(tmp_path, parse_scenario(SCENARIO), rounds_done=1)
    assert events == [("closed", "failed", False)]
