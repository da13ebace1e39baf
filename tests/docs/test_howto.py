"""The how-to pages (docs/how-to/): each names bundled scenarios that exist and validate,
the index links every page, and (slow) every scenario a page names runs a round.

The slow test runs each scenario for one round in process (the server's round loop
against the real ClientApp through ``tests.grid.InProcessGrid``, no Flower simulation),
cut to what the scenario allows: one local epoch, fewer attack iterations and evaluation
samples. SecAgg+, DP, continual, personalization and the attacks all run through it; the
scenarios of the commands that are not one federation (``tune_lr`` for ``fedrobust tune``,
``edge`` for ``fedrobust deploy``) run the federation their command runs per trial or on
the SuperNodes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedrobust.scenario import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
HOWTO = ROOT / "docs" / "how-to"
SCENARIOS = ROOT / "scenarios"
#: ``scenarios/<name>.yaml`` as a page writes it (not ``benchmarks/scenarios/...``)
SCENARIO_MENTION = re.compile(r"(?<![\w/.])scenarios/([\w-]+)\.yaml")
#: a relative link to a page beside the index: ``[text](page.md)`` or ``(page.md#anchor)``
PAGE_LINK = re.compile(r"\]\(([\w-]+\.md)(?:#[\w-]*)?\)")


def pages() -> list[Path]:
    """Every how-to page but the index."""
    return sorted(p for p in HOWTO.glob("*.md") if p.name != "index.md")


def named_scenarios(page: Path) -> list[str]:
    """The bundled scenarios a page names, in order of first mention."""
    return list(dict.fromkeys(SCENARIO_MENTION.findall(page.read_text(encoding="utf-8"))))


def all_named() -> list[str]:
    """Every bundled scenario some how-to page names."""
    return sorted({name for page in pages() for name in named_scenarios(page)})


def test_there_are_how_to_pages() -> None:
    assert len(pages()) >= 15


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.stem)
def test_every_page_names_bundled_scenarios_that_validate(page: Path) -> None:
    names = named_scenarios(page)
    assert names, f"{page.name} names no scenarios/<name>.yaml"
    for name in names:
        path = SCENARIOS / f"{name}.yaml"
        assert path.is_file(), f"{page.name} names {path.relative_to(ROOT)}, which does not exist"
        assert isinstance(load_scenario(path), Scenario)  # raises FedrobustError when invalid


def test_the_index_links_every_page_and_only_pages_that_exist() -> None:
    linked = set(PAGE_LINK.findall((HOWTO / "index.md").read_text(encoding="utf-8")))
    names = {p.name for p in pages()}
    assert names - linked == set(), "pages missing from docs/how-to/index.md"
    assert linked - names == set(), "index.md links pages that do not exist"


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.stem)
def test_links_between_how_to_pages_resolve(page: Path) -> None:
    for target in PAGE_LINK.findall(page.read_text(encoding="utf-8")):
        assert (HOWTO / target).is_file(), f"{page.name} links {target}"


def one_round(name: str, tmp_path: Path) -> dict[str, Any]:
    """Scenario ``name`` as a mapping, cut to one cheap round."""
    raw: dict[str, Any] = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    raw["train"] = {**raw.get("train", {}), "rounds": 1, "local_epochs": 1}
    raw["output"] = {}
    adversarial = raw.get("adversarial", {})
    if adversarial.get("evaluation"):
        adversarial["evaluation"].update(num_samples=50, steps=3, every_n_rounds=1)
    if adversarial.get("training", {}).get("steps"):
        adversarial["training"]["steps"] = 2
    evaluation = raw.get("evaluation", {})
    if attacks := evaluation.get("privacy_attacks"):
        attacks["rounds"] = [1]
        attacks["inversion"] = {**attacks.get("inversion", {}), "iterations": 5}
        attacks["membership"] = {"samples": 20, "shadow_models": 2, "shadow_epochs": 1}
    if explain := evaluation.get("explain"):
        explain.update(samples=10, n_steps=4)
    if audit := raw.get("privacy", {}).get("audit"):
        audit["canaries"] = 50
    return raw


def run_one_round(name: str, raw: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run ``raw`` in process on as many clients as it has; metrics.json as a dict."""
    from fedrobust.apps.inprocess import run_in_process

    return run_in_process(parse_scenario(raw), out)


@pytest.mark.slow
@pytest.mark.parametrize("name", all_named())
def test_every_named_scenario_runs_a_round(
    name: str, tmp_path: Path, server_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = one_round(name, tmp_path)
    if raw.get("model", {}).get("init_from"):
        # transfer_digits starts from transfer_pretrain's run (relative to the working
        # directory): train that one round first, in the test's own directory
        monkeypatch.chdir(tmp_path)
        source = Path(raw["model"]["init_from"]).name.removesuffix(".yaml")
        run_one_round(source, one_round(source, tmp_path), tmp_path / raw["model"]["init_from"])
    metrics = run_one_round(name, raw, tmp_path / name)
    assert metrics["status"] == "completed", metrics.get("error")
    first = metrics["rounds"][0]
    assert first["round"] == 1
    figures = [first[key] for key in ("accuracy", "loss") if key in first]
    assert figures and all(math.isfinite(value) for value in figures), first
