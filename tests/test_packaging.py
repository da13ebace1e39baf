"""What a wheel installs: every package listed, the Flower apps and the scenarios inside
``fedrobust``, the Flower app manifest in step with the package."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from setuptools import find_packages

import fedrobust
from fedrobust.apps import FLOWER_APP_DIR

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_the_package_list_holds_every_package_under_fedrobust_and_the_mapped_folders() -> None:
    mapped = set(SETUPTOOLS["package-dir"])
    data_only = set(SETUPTOOLS["package-data"]) - mapped
    found = set(find_packages(include=["fedrobust*"]))
    assert set(SETUPTOOLS["packages"]) == found | mapped | data_only


def test_the_apps_and_scenarios_install_under_the_package_namespace() -> None:
    dirs = SETUPTOOLS["package-dir"]
    assert dirs == {
        "fedrobust.apps.clients": "clients",
        "fedrobust.apps.server": "server",
        "fedrobust.scenarios": "scenarios",
    }
    assert all(p.startswith("fedrobust") for p in SETUPTOOLS["packages"])


def test_the_flower_app_manifest_names_importable_components_and_the_package_version() -> None:
    app = tomllib.loads((FLOWER_APP_DIR / "pyproject.toml").read_text())
    assert app["project"]["version"] == fedrobust.__version__
    for ref in app["tool"]["flwr"]["app"]["components"].values():
        module, attr = ref.split(":")
        assert module.startswith("fedrobust.apps.")
        assert hasattr(importlib.import_module(module), attr)
    assert app["tool"]["flwr"]["app"]["config"]["scenario"] == "quickstart"


def test_the_checkout_pyproject_is_no_flower_app_and_pins_nothing() -> None:
    assert "flwr" not in PYPROJECT.get("tool", {})
    pinned = [d for d in PYPROJECT["project"]["dependencies"] if "==" in d]
    assert pinned == []
    assert any(d.startswith("torch>=") for d in PYPROJECT["project"]["dependencies"])


def test_the_console_scripts_point_at_functions_that_exist() -> None:
    for ref in PYPROJECT["project"]["scripts"].values():
        module, attr = ref.split(":")
        assert callable(getattr(importlib.import_module(module), attr))
