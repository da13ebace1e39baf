"""`fedrobust repeat`: N seeds, each a `fedrobust run`, summarised with 95 % CIs.

Bad arguments and the failed-seed path run in-process (the seed's `fedrobust run` is
replaced by a small Python command); one end-to-end test runs 2 real seeds of 1 round.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import fedrobust.commands.repeat as repeat
from tests.cli import cli

SCENARIO = """\
name: tiny-repeat
seed: 11
data:
  dataset: digits
  partition: {kind: iid, num_clients: 3}
model: {name: mlp, hidden: [16]}
train: {rounds: 2, batch_size: 32}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "argument --seeds: must be >= 1, got 0"),
        (["--seeds", "two"], "argument --seeds: invalid"),
        (["--seeds", "2", "--jobs", "0"], "argument --jobs: must be >= 1, got 0"),
        (["--seeds", "2", "--rounds", "-1"], "argument --rounds: must be >= 1, got -1"),
        ([], "the following arguments are required: --seeds"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    message: str,
) -> None:  # fmt: skip
    code, _, err = cli(capsys, "repeat", str(scenario), "--out", str(tmp_path / "o"), *args)
    assert code == 2
    assert message in err
    assert not (tmp_path / "o").exists()


def test_seeds_past_the_largest_seed_exit_2(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario.write_text(SCENARIO.replace("seed: 11", f"seed: {2**31 - 2}"))
    code, _, err = cli(
        capsys, "repeat", str(scenario), "--seeds", "3", "--out", str(tmp_path / "o")
    )
    assert code == 2
    assert err.startswith("error: --seeds: seeds 2147483646..2147483648 run past")
    assert not (tmp_path / "o").exists()


def test_a_bad_scenario_exits_2_with_the_field(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario.write_text(SCENARIO.replace("num_clients: 3", "num_clients: 0"))
    code, _, err = cli(
        capsys, "repeat", str(scenario), "--seeds", "2", "--out", str(tmp_path / "o")
    )
    assert code == 2 and err.startswith("error: data.partition.num_clients")
    assert not (tmp_path / "o").exists()


FAKE_RUN = """\
import json, sys
from pathlib import Path
seed, out = int(sys.argv[1]), Path(sys.argv[2])
if seed == 13:
    print("error: data: something broke for this seed")
    sys.exit(2)
final = {"accuracy": 0.5 + seed / 100, "loss": 1.0, "stopped_early": False,
         "per_class_recall": [0.1], "robust_accuracy": {"pgd@0.1": seed / 100}}
(out / "metrics.json").write_text(json.dumps({"status": "completed", "final": final}))
"""


def test_a_failed_seed_is_reported_and_the_rest_summarised(
    scenario: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_command(path: Path, seed: int, seed_dir: Path, rounds: int | None) -> list[str]:
        assert rounds == 1
        return [sys.executable, "-c", FAKE_RUN, str(seed), str(seed_dir)]

    monkeypatch.setattr(repeat, "run_command", fake_command)
    out = tmp_path / "o"
    code, stdout, err = cli(
        capsys, "repeat", str(scenario), "--seeds", "3", "--rounds", "1", "--jobs", "2",
        "--out", str(out),
    )  # fmt: skip
    assert code == 1
    assert "1 of 3 seeds failed: 13" in err
    assert "seed 13: failed: error: data: something broke for this seed" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [11, 12, 13] and summary["completed"] == [11, 12]
    assert summary["failed"] == {"13": "error: data: something broke for this seed"}
    assert list(summary["figures"]) == ["accuracy", "loss", "robust_accuracy.pgd@0.1"]
    acc = summary["figures"]["accuracy"]
    assert acc["values"] == {"11": 0.61, "12": 0.62}
    # sd = 0.01 / sqrt(2); half-width = t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.005
    assert acc["mean"] == pytest.approx(0.615)
    assert acc["half_width"] == pytest.approx(0.063531, abs=1e-5)
    text = (out / "summary.md").read_text()
    assert "| accuracy | 0.615 ± 0.06353 | 2 | 0.61 | 0.62 |" in text
    assert "- seed 13: error: data: something broke for this seed" in text
    command = f"fedrobust repeat {scenario} --seeds 3 --out {out} --rounds 1 --jobs 2"
    assert command in text and summary["command"] == command
    assert (out / "seed-13" / "console.log").read_text().startswith("error: data:")


@pytest.mark.e2e
@pytest.mark.slow  # two real simulations (~1.5 min): in CI's slow step, not the default run
def test_two_real_seeds_of_one_round(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rep"
    code, stdout, err = cli(
        capsys, "repeat", str(scenario), "--seeds", "2", "--rounds", "1", "--out", str(out)
    )
    assert code == 0, stdout + err
    for seed in (11, 12):
        doc = json.loads((out / f"seed-{seed}" / "metrics.json").read_text())
        assert doc["status"] == "completed" and doc["scenario"]["seed"] == seed
        assert doc["final"]["rounds_completed"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"] == [11, 12] and summary["failed"] == {}
    acc = summary["figures"]["accuracy"]
    assert acc["n"] == 2 and acc["ci"][0] <= acc["mean"] <= acc["ci"][1]
    assert "| accuracy |" in (out / "summary.md").read_text()
    # a rerun reuses the finished seeds
    code, stdout, _ = cli(
        capsys, "repeat", str(scenario), "--seeds", "2", "--rounds", "1", "--out", str(out)
    )
    assert code == 0 and stdout.count("finished before") == 2
