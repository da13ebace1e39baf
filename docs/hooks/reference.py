"""MkDocs hook: fills the generated reference pages at build time.

A page holding the marker ``<!-- fedrobust:scenario-reference -->`` gets the scenario
reference (:func:`fedrobust.config.reference.scenario_reference_markdown`, walked from the
config models), one holding ``<!-- fedrobust:cli-reference -->`` the command-line
reference (:func:`fedrobust.commands.reference.cli_reference_markdown`, from the argparse
parser). Nothing is copied by hand: a field or option added in code appears in the next
build.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

SCENARIO_MARKER = "<!-- fedrobust:scenario-reference -->"
CLI_MARKER = "<!-- fedrobust:cli-reference -->"


def on_config(config: Any) -> Any:
    """Put this checkout first on ``sys.path``: the generated pages describe its code, even
    where another copy of fedrobust is installed (or none is). Done here, not at import:
    MkDocs restores ``sys.path`` after loading a hook module."""
    if sys.path[:1] != [str(ROOT)]:
        sys.path.insert(0, str(ROOT))
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each marker with the reference generated from the code."""
    if SCENARIO_MARKER in markdown:
        from fedrobust.config.reference import scenario_reference_markdown

        markdown = markdown.replace(SCENARIO_MARKER, scenario_reference_markdown())
    if CLI_MARKER in markdown:
        from fedrobust.commands.reference import cli_reference_markdown

        markdown = markdown.replace(CLI_MARKER, cli_reference_markdown())
    return markdown
