"""The progress bar draws on a terminal only, and its steps reach the total."""

from __future__ import annotations

import io

from rich.console import Console

from fedrobust.commands.follow import follow
from fedrobust.commands.progress import progress_bar
from fedrobust.scenario import parse_scenario


def test_a_terminal_gets_a_bar_with_eta_and_a_pipe_gets_nothing() -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100, highlight=False)
    with progress_bar(terminal, 3, "rounds") as done:
        for n in (1, 2, 3):
            done(n)
            terminal.print(f"round {n}")
    text = screen.getvalue()
    assert "round 3" in text and "rounds" in text and "ETA" in text and "3/3" in text
    piped = io.StringIO()
    with progress_bar(Console(file=piped, force_terminal=False), 3, "rounds") as done:
        done(1)
    assert piped.getvalue() == ""


def test_follow_prints_one_line_per_round_without_a_terminal(tmp_path) -> None:  # noqa: ANN001
    scenario = parse_scenario({"name": "p", "train": {"rounds": 2}})
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    rows = [{"round": r, "accuracy": 0.5, "loss": 1.0, "seconds": 0.1, "dropped": {}}
            for r in (1, 2)]  # fmt: skip

    def launch(on_round):  # noqa: ANN001, ANN202
        for row in rows:
            on_round(row)
        raise __import__("fedrobust.launch").launch.RunFailed("stopped for the test")

    assert follow(console, scenario, tmp_path, launch) == 1
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
