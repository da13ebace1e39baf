"""``fedrobust scenarios``: the bundled scenarios, by name, with their one-line summary."""

from __future__ import annotations

import argparse


def cmd_scenarios(args: argparse.Namespace) -> int:
    """Print each bundled scenario's name and the first sentence of its leading comment
    (``--paths``: its file instead)."""
    from fedrobust.bundled import bundled_scenarios, scenario_summary

    scenarios = bundled_scenarios()
    width = max(map(len, scenarios), default=0)
    for name, path in scenarios.items():
        print(f"{name:<{width}}  {path if args.paths else scenario_summary(path)}")
    return 0
