"""End to end: the server records what it sees, the attacks run after the last round and
again from ``fedrobust privacy-attack``; bad requests exit 2 naming the option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fedrobust.apps.server.loop import run_federation

from fedrobust.cli import main
from fedrobust.scenario import parse_scenario
from tests.grid import InProcessGrid
from tests.test_cli_run import fedrobust

pytestmark = pytest.mark.e2e

ATTACKS = {
    "attacks": ["inversion", "membership"],
    "clients": [0],
    "rounds": [1, 2],
    "images": 2,
    "inversion": {"iterations": 60},
    "membership": {"samples": 60, "shadow_models": 2, "shadow_epochs": 2},
}


def scenario(**extra: Any) -> dict[str, Any]:
    return {
        "name": "curious_server",
        "seed": 5,
        "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"rounds": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.1}},
        "evaluation": {"privacy_attacks": ATTACKS},
        **extra,
    }


def cli(*args: str) -> int:
    """``fedrobust ARGS`` in this process (its exit code); the one real subprocess is in
    test_the_cli_reruns_one_attack_on_the_chosen_update."""
    try:
        return main(list(args))
    except SystemExit as exc:  # argparse's own refusals exit 2 too
        return int(exc.code or 0)


def run(doc: dict[str, Any], out: Path) -> dict[str, Any]:
    run_federation(InProcessGrid(3), parse_scenario(doc), out)
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flwr.supercore.task_identity import TaskIdentity

    old = TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    out = tmp_path_factory.mktemp("attacked") / "run"
    try:
        run(scenario(), out)
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = old
    return out


def test_the_server_records_the_listed_clients_and_attacks_after_the_run(plain_run: Path) -> None:
    doc = json.loads((plain_run / "metrics.json").read_text())
    assert [r["privacy_attack_records"] for r in doc["rounds"]] == [1, 1]
    names = sorted(p.name for p in (plain_run / "privacy_attacks" / "updates").iterdir())
    assert names == ["round-1-client-0.pt", "round-2-client-0.pt"]
    summary = doc["final"]["privacy_attacks"]
    assert summary["inversion_updates"] == 2
    assert summary["inversion_psnr"] > 0
    assert 0 <= summary["membership_loss_auc"] <= 1 and 0 <= summary["membership_lira_auc"] <= 1
    results = json.loads((plain_run / "privacy_attacks" / "results.json").read_text())
    for row in results["inversion"]:
        assert row["clients"] == [0] and len(row["psnr"]) == 2
        assert (plain_run / "privacy_attacks" / row["picture"]).is_file()
    assert (plain_run / "privacy_attacks" / "membership-roc.png").is_file()
    report = (plain_run / "report.html").read_text()
    assert "Privacy attacks" in report and "Gradient inversion by the server" in report


def test_the_cli_reruns_one_attack_on_the_chosen_update(plain_run: Path) -> None:
    done = fedrobust(
        "privacy-attack", str(plain_run), "--attack", "inversion",
        "--client", "0", "--round", "2", "--images", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "round 2, client 0" in done.stdout
    results = json.loads((plain_run / "privacy_attacks" / "results.json").read_text())
    assert [(r["round"], r["images"]) for r in results["inversion"]] == [(2, 1)]
    assert "membership" in results  # the other attack's results stay


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--attack", "inversion", "--client", "1"], "--client"),
        (["--attack", "inversion", "--round", "3"], "--round"),
        (["--attack", "membership", "--client", "0"], "--client"),
        (["--attack", "inversion", "--client", "-1"], "--client"),
    ],
)
def test_a_request_for_what_the_server_never_saw_exits_2(
    plain_run: Path, args: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("privacy-attack", str(plain_run), *args) == 2
    assert where in capsys.readouterr().err


def test_a_run_without_recorded_updates_model_or_metrics_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from fedrobust.data import build_federation
    from fedrobust.models.build import build_model

    assert cli("privacy-attack", str(tmp_path), "--attack", "membership") == 2
    assert "metrics.json" in capsys.readouterr().err
    doc = scenario(evaluation={})
    (tmp_path / "metrics.json").write_text(
        json.dumps({"scenario": doc, "rounds": [], "status": "completed"})
    )
    assert cli("privacy-attack", str(tmp_path), "--attack", "membership") == 2
    assert "model.pt" in capsys.readouterr().err
    parsed = parse_scenario(doc)
    model = build_model(parsed.model, build_federation(parsed.data, parsed.seed).spec)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    assert cli("privacy-attack", str(tmp_path), "--attack", "inversion") == 2
    assert "evaluation.privacy_attacks: the run recorded no updates" in capsys.readouterr().err


def test_under_secagg_the_server_records_and_attacks_only_the_aggregate(
    tmp_path: Path, server_identity: None, capsys: pytest.CaptureFixture[str]
) -> None:
    attacks = {k: v for k, v in ATTACKS.items() if k not in ("clients", "membership")}
    attacks["attacks"] = ["inversion"]
    secure = {"secure_aggregation": {"num_shares": 3, "reconstruction_threshold": 2}}
    doc = run(scenario(evaluation={"privacy_attacks": attacks}, privacy=secure), tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run" / "privacy_attacks" / "updates").iterdir())
    assert names == ["round-1-aggregate.pt", "round-2-aggregate.pt"]
    results = json.loads((tmp_path / "run" / "privacy_attacks" / "results.json").read_text())
    assert [r["kind"] for r in results["inversion"]] == ["aggregate", "aggregate"]
    assert results["inversion"][0]["clients"] == [0, 1, 2]
    assert doc["final"]["privacy_attacks"]["inversion_updates"] == 2
    refused = cli("privacy-attack", str(tmp_path / "run"), "--attack", "inversion", "--client", "0")
    assert refused == 2 and "SecAgg+" in capsys.readouterr().err
    with pytest.raises(Exception, match="evaluation.privacy_attacks.clients"):
        parse_scenario(scenario(evaluation={"privacy_attacks": ATTACKS}, privacy=secure))


def test_an_update_without_the_private_head_is_reported_not_fatal(
    tmp_path: Path, server_identity: None, capsys: pytest.CaptureFixture[str]
) -> None:
    attacks = {"attacks": ["inversion"], "rounds": [1], "images": 1,
               "inversion": {"iterations": 5}}  # fmt: skip
    doc = scenario(
        evaluation={"privacy_attacks": attacks},
        personalization={"method": "fedper"},
        data={"dataset": "digits", "local_test_fraction": 0.2,
              "partition": {"kind": "iid", "num_clients": 3}},
    )  # fmt: skip
    out = tmp_path / "run"
    metrics = run(doc, out)
    assert metrics["status"] == "completed"  # the run keeps its model and figures
    results = json.loads((out / "privacy_attacks" / "results.json").read_text())
    assert "personalization.method" in results["inversion"][0]["error"]
    assert "inversion_psnr" not in metrics["final"]["privacy_attacks"]
    assert cli("privacy-attack", str(out), "--attack", "inversion") == 2
    assert "personalization.method" in capsys.readouterr().err
