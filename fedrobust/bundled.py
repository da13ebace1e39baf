"""The scenarios that ship with fedrobust, found by name: ``fedrobust run quickstart``.

In a source checkout they are the YAML files of the top-level ``scenarios/`` folder; a
wheel installs the same files as package data in ``fedrobust/scenarios/``
(``[tool.setuptools.package-dir]`` in pyproject.toml). Every command that takes a
scenario accepts a path or one of these names (``fedrobust scenarios`` lists them).
"""

from __future__ import annotations

import re
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def scenarios_dir() -> Path:
    """The folder of the bundled scenarios: the installed package's, else the checkout's."""
    installed = _PACKAGE / "scenarios"
    return installed if installed.is_dir() else _PACKAGE.parent / "scenarios"


def bundled_scenarios() -> dict[str, Path]:
    """``{name: path}`` of every bundled scenario, by name."""
    return {path.stem: path for path in sorted(scenarios_dir().glob("*.yaml"))}


def scenario_summary(path: Path, width: int = 100) -> str:
    """The first sentence of a scenario file's leading comment, cut to ``width``; or ''."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        words += line.lstrip("#").split()
    text = " ".join(words)
    end = re.search(r"(?<!\bal)\.\s", text)  # a sentence's end, not "et al. "
    text = text[: end.start() + 1] if end else text
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def resolve_scenario(name_or_path: str | Path) -> Path:
    """The file a scenario argument names: an existing path, else a bundled name.

    A bare name (``quickstart``, no folder and no ``.yaml``) that is no file in the working
    directory means the bundled scenario of that name; anything else is returned as a
    path, so that loading it reports the missing file by the name the user gave.
    """
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    return bundled_scenarios().get(path.name, path)
