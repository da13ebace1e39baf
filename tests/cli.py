"""The command line run in-process, as the tests call it."""

from __future__ import annotations

import pytest

from fedrobust.cli import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``fedrobust ARGS`` (argparse errors included)."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
