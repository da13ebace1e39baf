"""End to end: DP runs report the epsilon their mechanism gives, across resumes and budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fedrobust.apps.server.loop import run_federation
from opacus.accountants import create_accountant

from fedrobust.scenario import parse_scenario
from tests.grid import InProcessGrid
from tests.test_cli_run import fedrobust

pytestmark = pytest.mark.e2e

SCENARIO = """\
name: dp_tiny
seed: 3
data:
  dataset: digits
  partition: {kind: iid, num_clients: 3}
model: {name: mlp, hidden: [32]}
train:
  rounds: 3
  batch_size: 32
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
privacy:
  dp: {mode: sample, noise_multiplier: 1.2, max_grad_norm: 1.0%s}
  audit: {canaries: 60}
"""


def recomputed(ledger: list[dict], delta: float) -> float:
    """Epsilon from metrics.json's ledger with nothing of ours: Opacus's accountant alone."""
    acc = create_accountant("rdp")
    for e in ledger:
        for _ in range(e["steps"]):
            acc.step(noise_multiplier=e["noise_multiplier"], sample_rate=e["sample_rate"])
    return acc.get_epsilon(delta=delta)


def test_a_resumed_dp_run_keeps_its_epsilon_and_anyone_can_recompute_it(
    tmp_path: Path, server_identity: None
) -> None:
    doc = yaml.safe_load(SCENARIO % "")
    out = tmp_path / "run"
    first = run_federation(
        InProcessGrid(3), parse_scenario({**doc, "train": {**doc["train"], "rounds": 2}}), out
    )
    assert first["epsilon"] > 0
    # a new grid, as a new simulation: every client's context.state is gone; the server's
    # ledger is not (the loop in-process: `fedrobust run --resume` is tested end to end in
    # tests/test_cli_run.py)
    run_federation(InProcessGrid(3), parse_scenario(doc), out, resume=True)
    doc = json.loads((out / "metrics.json").read_text())
    rounds, final = doc["rounds"], doc["final"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    eps = [r["epsilon"] for r in rounds]
    assert eps[0] < eps[1] < eps[2] == final["epsilon"]
    for client, ledger in final["privacy_ledger"].items():
        assert [e["round"] for e in ledger] == [1, 2, 3]
        mine = rounds[-1]["epsilon_clients"][int(client)]
        assert mine == pytest.approx(recomputed(ledger, final["delta"]), rel=1e-9)
    # each client's own accountant, restored from the server's copy, agrees in round 3
    for c in rounds[-1]["clients"]:
        assert c["epsilon"] == pytest.approx(rounds[-1]["epsilon_clients"][c["client"]], rel=1e-9)
    # the run audited itself; `fedrobust audit` recomputes the same figures from the model
    assert final["audit"]["claimed_epsilon"] == final["epsilon"]
    audit = fedrobust("audit", str(out))
    assert audit.returncode == 0, audit.stderr
    assert "epsilon lower bound" in audit.stdout
    assert json.loads((out / "audit.json").read_text()) == final["audit"]


def test_audit_of_a_run_without_canaries_or_model_exits_2(tmp_path: Path) -> None:
    missing = fedrobust("audit", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a run directory" in missing.stderr


def test_clients_past_their_budget_refuse_and_the_run_goes_on(tmp_path: Path) -> None:
    # sigma 1.2, q = 1/14, 14 steps a round: epsilon 2.45 after 2 rounds, 2.82 after 3
    path = tmp_path / "budget.yaml"
    adversarial = (  # DP-SGD with fast adversarial training, robust accuracy measured
        "adversarial:\n  training: {method: fgsm_rs, eps: 0.1, start_round: 2}\n"
        "  evaluation: {attacks: [pgd], eps: [0.1], steps: 5, every_n_rounds: 2, "
        "num_samples: 50}\n"
    )
    path.write_text(SCENARIO % ", epsilon_budget: 2.6" + adversarial)
    out = tmp_path / "run"
    done = fedrobust("run", str(path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "metrics.json").read_text())
    last = doc["rounds"][-1]
    assert doc["status"] == "completed"
    assert last["dropped"] == {"budget_exhausted": 3} and last["aggregated"] == 0
    assert last["accuracy"] == doc["rounds"][-2]["accuracy"]  # the global model stays
    assert doc["final"]["epsilon"] == doc["rounds"][-2]["epsilon"] <= 2.6
    every_2nd_and_last = [sorted(r.get("robust_accuracy", {})) for r in doc["rounds"]]
    measured = ["clean@subset", "pgd@0.1", "worst@0.1"]  # worst case over the attacks run
    assert every_2nd_and_last == [[], measured, measured]
    assert 0 <= doc["final"]["robust_accuracy"]["pgd@0.1"] <= 1


CLIENT_LEVEL = {
    "name": "dp_secret",
    "seed": 4,
    "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 5}},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"rounds": 1, "fraction_train": 0.6, "batch_size": 32},
    "privacy": {"dp": {"mode": "client", "noise_multiplier": 1.0, "clipping_norm": 1.0}},
}


@pytest.mark.usefixtures("server_identity")
def test_dp_noise_is_secret_by_default_and_seeded_only_when_asked(tmp_path: Path) -> None:
    import torch
    from fedrobust.apps.server.loop import run_federation

    from fedrobust.scenario import parse_scenario
    from tests.server.test_loop import InProcessGrid

    def run(name: str, reproducible: bool) -> tuple[list[torch.Tensor], dict]:
        doc = json.loads(json.dumps(CLIENT_LEVEL))
        doc["privacy"]["dp"]["reproducible"] = reproducible
        out = tmp_path / name
        final = run_federation(InProcessGrid(), parse_scenario(doc), out)  # type: ignore[arg-type]
        return list(torch.load(out / "model.pt").values()), final

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))

    secret_a, final_a = run("a", False)
    secret_b, _ = run("b", False)
    seeded_a, final_s = run("s1", True)
    seeded_b, _ = run("s2", True)
    assert same(seeded_a, seeded_b)  # research mode repeats exactly ...
    assert not same(secret_a, secret_b)  # ... a default run does not ...
    # ... and regenerating the noise from the seed does not give what a default run drew
    assert not same(secret_a, seeded_a)
    assert final_a["privacy_valid"] is True and final_s["privacy_valid"] is False
    # a published sample gives no amplification: the same mechanism claims more epsilon
    assert final_s["epsilon"] > final_a["epsilon"]


def test_a_reproducible_dp_run_says_not_private_on_the_console(tmp_path: Path) -> None:
    from rich.console import Console

    from fedrobust.commands.follow import print_summary
    from fedrobust.scenario import parse_scenario

    scenario = parse_scenario(CLIENT_LEVEL)
    final = {"accuracy": 0.5, "loss": 1.0, "rounds_completed": 1, "wall_seconds": 1.0,
             "epsilon": 2.0, "delta": 1e-5, "dp_mode": "client", "accountant": "rdp"}  # fmt: skip
    doc = {"final": final, "rounds": [{"dropped": {}}]}
    for valid, shown in ((True, False), (False, True)):
        console = Console(record=True, width=200)
        print_summary(console, scenario, {**doc, "final": {**final, "privacy_valid": valid}},
                      tmp_path)  # fmt: skip
        assert ("NOT PRIVATE" in console.export_text()) is shown
