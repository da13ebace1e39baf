"""The command-line reference, generated from the ``fedrobust`` parser itself.

:func:`cli_reference_markdown` renders :func:`fedrobust.cli.build_parser`: one section per
sub-command with its help, its usage line and a table of its arguments (required or
not, default, choices, help). The documentation site calls it from its build hook
(``docs/hooks/reference.py``), so a new option appears in the docs as soon as it is in
the parser.
"""

from __future__ import annotations

import argparse
import functools

from fedrobust.config.reference import markdown_cell

#: Width of the usage lines in the reference.
USAGE_WIDTH = 88


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if text == argparse.SUPPRESS:
        return ""
    if "%(" in text:
        params = {**vars(action), "prog": ""}
        text = text % params
    return text.replace("%%", "%")


def _names(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(action.option_strings)
        if action.nargs == 0:
            return f"`{names}`"
        metavar = action.metavar or action.dest.upper()
        return f"`{names} {metavar}`"
    metavar = action.metavar or action.dest
    suffix = " ..." if action.nargs in ("+", "*") else ""
    return f"`{metavar}{suffix}`"


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return f"`{action.default}`"


def _usage(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = functools.partial(  # type: ignore[assignment]
        argparse.HelpFormatter, width=USAGE_WIDTH
    )
    return parser.format_usage().rstrip()


def _table(actions: list[argparse.Action]) -> list[str]:
    rows = [
        a for a in actions if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]
    if not rows:
        return []
    lines = [
        "| argument | required | default | choices | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for action in rows:
        required = "yes" if (action.required or not action.option_strings) else ""
        choices = ", ".join(f"`{c}`" for c in action.choices) if action.choices else ""
        lines.append(
            "| "
            + " | ".join(
                markdown_cell(x)
                for x in (_names(action), required, _default(action), choices, _help(action))
            )
            + " |"
        )
    return lines


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: _help(a) for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def cli_reference_markdown(parser: argparse.ArgumentParser | None = None, level: int = 2) -> str:
    """The command line as Markdown: the program's own options, then for every
    sub-command (in the parser's order) its help, usage and arguments.

    Parameters
    ----------
    parser : argparse.ArgumentParser, optional
        Default: :func:`fedrobust.cli.build_parser`.
    level : int
        Heading level of each sub-command (2: ``##``).
    """
    if parser is None:
        from fedrobust.cli import build_parser

        parser = build_parser()
    hashes = "#" * level
    prog = parser.prog
    parts = [f"{hashes} `{prog}` {{#{prog}}}", ""]
    if parser.description:
        parts += [parser.description, ""]
    parts += ["```text", _usage(parser), "```", ""]
    table = _table(parser._actions)
    if table:
        parts += [*table, ""]
    for name, help_text, sub in _subcommands(parser):
        parts += [f"{hashes} `{prog} {name}` {{#{prog}-{name}}}", ""]
        if help_text:
            parts += [help_text[:1].upper() + help_text[1:] + ".", ""]
        parts += ["```text", _usage(sub), "```", ""]
        table = _table(sub._actions)
        if table:
            parts += [*table, ""]
    return "\n".join(parts).rstrip() + "\n"
