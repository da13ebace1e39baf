"""The ``output`` section's trackers: defaults, the local store's place, a missing package
refused before launch (naming the field), a store out of reach skipped."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from fedrobust.commands.preflight import preflight
from fedrobust.errors import FedrobustError
from fedrobust.scenario import Scenario, parse_scenario, scenario_to_yaml
from fedrobust.tracking import check_tracking, open_trackers
from fedrobust.tracking.config import MlflowConfig, resolve_tracking_uri


def scenario(**output: Any) -> Scenario:
    return parse_scenario({"name": "tracked", "output": output})


def test_trackers_are_off_by_default_and_true_takes_the_defaults() -> None:
    assert scenario().output.tensorboard is False
    assert scenario().output.mlflow is None
    assert scenario(mlflow=True).output.mlflow == MlflowConfig()
    assert scenario(mlflow=False).output.mlflow is None
    on = scenario(tensorboard=True, mlflow={"experiment": "e", "run_name": "r"})
    assert parse_scenario(on.model_dump(mode="json")) == on  # the resolved scenario validates
    assert "tracking_uri: file:mlruns" in scenario_to_yaml(on)
    with pytest.raises(FedrobustError, match="output.mlflow.uri"):
        scenario(mlflow={"uri": "file:x"})


def test_tracking_is_not_part_of_what_a_resume_must_share() -> None:
    assert scenario(tensorboard=True, mlflow=True).resume_digest() == scenario().resume_digest()


def test_a_relative_local_store_sits_beside_the_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "quickstart"
    runs = tmp_path / "runs"
    assert resolve_tracking_uri("file:mlruns", run_dir) == f"file:{runs / 'mlruns'}"
    assert resolve_tracking_uri("file:./x/../store", run_dir) == f"file:{runs / 'x/../store'}"
    assert resolve_tracking_uri("mlruns", run_dir) == f"file:{runs / 'mlruns'}"
    assert resolve_tracking_uri("file:/abs/mlruns", run_dir) == "file:/abs/mlruns"
    assert resolve_tracking_uri("/abs/mlruns", run_dir) == "file:/abs/mlruns"
    assert resolve_tracking_uri("file:///abs/mlruns", run_dir) == "file:///abs/mlruns"
    for uri in ("sqlite:///mlflow.db", "http://localhost:5000", "https://mlflow.example"):
        assert resolve_tracking_uri(uri, run_dir) == uri
    assert MlflowConfig().resolved_uri(run_dir) == f"file:{runs / 'mlruns'}"


@pytest.mark.parametrize(
    ("output", "missing", "field"),
    [({"tensorboard": True}, "tensorboard", "output.tensorboard"),
     ({"mlflow": True}, "mlflow", "output.mlflow")],
)  # fmt: skip
def test_a_missing_package_is_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, output: dict[str, Any], missing: str, field: str
) -> None:
    monkeypatch.setattr(
        "fedrobust.extras.find_spec", lambda name: None if name == missing else object()
    )
    sc = scenario(**output)
    for check in (check_tracking, preflight, lambda s: open_trackers(s, Path("unused"), 0)):
        with pytest.raises(FedrobustError) as caught:
            check(sc)
        assert caught.value.where == field
        assert "pip install 'fedrobust[tracking]'" in caught.value.what
    check_tracking(scenario())  # nothing asked, nothing needed


def test_a_store_that_cannot_open_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("mlflow")
    sc = scenario(mlflow={"tracking_uri": "nosuchscheme://store"})
    with caplog.at_level(logging.WARNING, logger="fedrobust.tracking"):
        assert open_trackers(sc, tmp_path / "run", 0) == []
    assert "MLflow: could not open" in caplog.text
