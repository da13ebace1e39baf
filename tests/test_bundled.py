"""Bundled scenarios by name: `fedrobust run quickstart`, `fedrobust scenarios`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedrobust.bundled import bundled_scenarios, resolve_scenario, scenario_summary
from fedrobust.scenario import load_scenario
from tests.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_every_yaml_of_the_scenarios_folder_is_bundled_by_its_name() -> None:
    names = bundled_scenarios()
    assert set(names) == {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert names["quickstart"].read_bytes() == (ROOT / "scenarios/quickstart.yaml").read_bytes()


def test_a_bare_name_means_the_bundled_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_scenario("quickstart") == bundled_scenarios()["quickstart"]
    assert load_scenario("quickstart").name == "quickstart"


def test_a_file_in_the_working_directory_wins_over_a_bundled_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text("name: mine\n")
    assert resolve_scenario("quickstart") == Path("quickstart")
    assert load_scenario("quickstart").name == "mine"


@pytest.mark.parametrize("arg", ["nosuch", "nosuch.yaml", "dir/quickstart"])
def test_an_unknown_name_or_path_stays_a_path_and_fails_naming_it(
    arg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_scenario(arg) == Path(arg)
    code, _, err = cli(capsys, "validate", arg)
    assert code == 2 and f"error: {arg}: no such scenario file" in err


def test_the_summary_is_the_first_sentence_of_the_leading_comment(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("# A study (Baruch et al. 2019) of X. More words\n# here.\nname: s\n")
    assert scenario_summary(path) == "A study (Baruch et al. 2019) of X."
    path.write_text("name: s\n# late comment\n")
    assert scenario_summary(path) == ""


def test_fedrobust_scenarios_lists_every_name_with_its_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(capsys, "scenarios")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(bundled_scenarios())
    assert any(line.startswith("quickstart ") and "MNIST" in line for line in lines)
    code, out, _ = cli(capsys, "scenarios", "--paths")
    assert str(bundled_scenarios()["edge"]) in out


def test_fedrobust_version_names_the_package_and_its_runtime(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import fedrobust

    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.startswith(f"fedrobust {fedrobust.__version__} (flwr ")
