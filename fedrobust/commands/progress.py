"""A progress bar with ETA for the long commands (rounds, matrix cells, seeds).

Shown only on a terminal: in a pipe, a log file or a notebook's captured output the
commands print their one line per step and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def progress_bar(console: Any, total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` ``what`` (e.g. ``rounds``); yields ``done(n)`` to move it to
    ``n`` completed. Lines printed on ``console`` meanwhile appear above the bar.

    Parameters
    ----------
    console : rich.console.Console
        Where the bar draws; nothing is drawn unless it is a terminal.
    total : int
        Steps in all.
    what : str
        What a step is, shown beside the bar.
    """
    if not console.is_terminal or total < 1:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(what, total=total)
    with bar:
        yield lambda n: bar.update(task, completed=min(n, total))
