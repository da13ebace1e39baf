"""The layout stays as docs/ARCHITECTURE.md draws it: thin Flower apps, no god module."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMITS = {"clients/client_app.py": 200, "server/loop.py": 250}


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.parametrize(("name", "limit"), sorted(LIMITS.items()))
def test_the_flower_apps_stay_thin(name: str, limit: int) -> None:
    assert lines(ROOT / name) <= limit


def test_no_module_passes_600_lines() -> None:
    big = {
        str(p.relative_to(ROOT)): lines(p)
        for folder in ("fedrobust", "clients", "server")
        for p in (ROOT / folder).rglob("*.py")
        if lines(p) > 600
    }
    assert big == {}
