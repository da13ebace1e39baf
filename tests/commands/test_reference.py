"""The generated command-line reference names every sub-command and every option."""

from __future__ import annotations

import argparse

from fedrobust.cli import build_parser
from fedrobust.commands.reference import cli_reference_markdown


def test_every_subcommand_and_option_is_in_the_reference():
    parser = build_parser()
    text = cli_reference_markdown(parser)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(subparsers.choices) >= 10
    for name, sub in subparsers.choices.items():
        assert f"## `fedrobust {name}` {{#fedrobust-{name}}}" in text
        section = text.split(f"## `fedrobust {name}`")[1].split("\n## ")[0]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            shown = (
                action.option_strings[0] if action.option_strings else action.metavar or action.dest
            )
            assert f"| `{shown}" in section, f"fedrobust {name}: {shown} missing"


def test_help_text_is_plain_markdown():
    text = cli_reference_markdown()
    assert "%%" not in text
    assert "runs/&lt;name&gt;" in text  # not swallowed as an HTML tag
    assert "| `--format FORMAT` | yes |  | `torchscript`, `onnx` |" in text
