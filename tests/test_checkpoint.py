"""Checkpoints and the final model: atomic, refused clearly when malformed, never stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fedrobust.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_atomic,
    save_checkpoint,
    save_model,
)
from fedrobust.errors import FedrobustError
from fedrobust.rundir import RunDir, discard_checkpoint


def checkpoint(rnd: int = 2, digest: str = "abc") -> Checkpoint:
    return Checkpoint(
        round=rnd,
        digest=digest,
        model={"w": torch.ones(2, 2)},
        strategy={"m": torch.zeros(3)},
        extra={"best": 0.5},
        torch_rng=torch.get_rng_state(),
    )


def test_a_checkpoint_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, checkpoint())
    loaded = load_checkpoint(tmp_path, "abc")
    assert loaded.round == 2 and torch.equal(loaded.model["w"], torch.ones(2, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_save_model_writes_model_pt_atomically(tmp_path: Path) -> None:
    path = save_model(tmp_path, {"w": torch.arange(3.0)})
    assert path == RunDir(tmp_path).model
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


class Unpicklable:
    def __reduce__(self) -> tuple[object, ...]:
        raise RuntimeError("disk full")  # as a write that fails half-way


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = save_model(tmp_path, {"w": torch.ones(1)})
    with pytest.raises(RuntimeError, match="disk full"):
        save_atomic({"w": torch.zeros(1), "bad": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(1))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        (b"not a torch file", "unreadable checkpoint"),
        ({"format": 99}, "not a fedrobust checkpoint"),
        ({"format": 1, "round": 1}, "malformed checkpoint (no 'digest')"),
        ({"format": 1, "round": "2", "digest": "abc", "model": {}, "strategy": {},
          "extra": {}, "torch_rng": torch.zeros(1)}, "malformed checkpoint (round is '2')"),
        ({"format": 1, "round": 2, "digest": "abc", "model": {"w": 1.0}, "strategy": {},
          "extra": {}, "torch_rng": torch.zeros(1)}, "model is not a state dict"),
    ],
)  # fmt: skip
def test_a_malformed_checkpoint_is_one_clear_error_naming_the_file(
    tmp_path: Path, payload: object, what: str
) -> None:
    path = RunDir(tmp_path).checkpoint
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    with pytest.raises(FedrobustError) as info:
        load_checkpoint(tmp_path)
    assert info.value.where == str(path)
    assert what in info.value.what and "\n" not in info.value.what


def test_another_scenarios_checkpoint_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, checkpoint(digest="abc"))
    with pytest.raises(FedrobustError, match="different scenario"):
        load_checkpoint(tmp_path, "xyz")


def test_discard_checkpoint_removes_it_and_tolerates_none(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, checkpoint())
    discard_checkpoint(tmp_path)
    assert not RunDir(tmp_path).checkpoint.exists()
    discard_checkpoint(tmp_path)
    with pytest.raises(FedrobustError, match="no checkpoint"):
        load_checkpoint(tmp_path)


def test_a_fresh_run_in_an_old_directory_cannot_resume_the_old_checkpoint(
    tmp_path: Path,
) -> None:
    from fedrobust.scenario import parse_scenario
    from fedrobust.simulation import check_resumable

    scenario = parse_scenario(
        {
            "name": "stale",
            "seed": 1,
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"rounds": 5},
        }
    )
    save_checkpoint(tmp_path, checkpoint(rnd=3, digest=scenario.resume_digest()))
    metrics = RunDir(tmp_path).metrics
    rows = [{"round": r, "accuracy": 0.5, "loss": 1.0} for r in (1, 2, 3)]
    metrics.write_text(json.dumps({"status": "running", "scenario": {}, "rounds": rows}))
    assert check_resumable(tmp_path, scenario) == 3

    # metrics.json of a newer run that crashed before its first round, next to the old
    # checkpoint (as if it had not been removed): refused, not resumed
    metrics.write_text(json.dumps({"status": "running", "scenario": {}, "rounds": []}))
    with pytest.raises(FedrobustError, match="not this run's checkpoint"):
        check_resumable(tmp_path, scenario)

    from fedrobust.report.metrics import RunRecorder

    RunRecorder(tmp_path, {"name": "stale"})  # a fresh run starts: the old state goes
    with pytest.raises(FedrobustError, match="no checkpoint"):
        check_resumable(tmp_path, scenario)


def test_a_malformed_metrics_json_refuses_resume_naming_the_file(tmp_path: Path) -> None:
    from fedrobust.scenario import parse_scenario
    from fedrobust.simulation import check_resumable

    scenario = parse_scenario(
        {
            "name": "m",
            "seed": 1,
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"rounds": 5},
        }
    )
    save_checkpoint(tmp_path, checkpoint(rnd=1, digest=scenario.resume_digest()))
    RunDir(tmp_path).metrics.write_text('{"status": "running", "rounds": [')
    with pytest.raises(FedrobustError) as info:
        check_resumable(tmp_path, scenario)
    assert info.value.where == str(RunDir(tmp_path).metrics)
