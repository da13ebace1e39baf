"""No process of a run outlives the CLI: after a SIGKILL of ``fedrobust run`` too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedrobust.lifetime import Lifetime, descendants, marked_processes, sweep

SCENARIO = """\
name: lifetime
seed: 3
data:
  dataset: digits
  partition: {kind: dirichlet, num_clients: 3, alpha: 1.0}
model: {name: mlp, hidden: [16]}
train:
  rounds: 200
  batch_size: 16
"""


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def _mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment holds ``text``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{name}/{part}").read_bytes()
            except OSError:
                continue
            if text.encode() in data and _alive(int(name)):
                found.append(int(name))
                break
    return found


def _describe(pids: list[int]) -> str:
    rows = []
    for pid in pids:
        try:
            rows.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:200]!r}")
        except OSError:
            rows.append(f"{pid}: gone")
    return "\n".join(rows)


def test_a_watched_process_dies_with_its_starter() -> None:
    """The watcher kills a marked grandchild in a session of its own once the starter ends."""
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         "from fedrobust.lifetime import Lifetime\n"
         "life = Lifetime()\n"
         "child = subprocess.Popen(['sleep', '300'], env=life.env({'PATH': '/usr/bin:/bin'}),"
         " start_new_session=True)\n"
         "print(child.pid, life.token, flush=True)\n"
         "time.sleep(300)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert starter.stdout is not None
    pid_text, token = starter.stdout.readline().split()
    sleeper = int(pid_text)
    # Popen returns once the child's close-on-exec pipe closes, a moment before the kernel
    # publishes the new image's environment: /proc/<pid>/environ may read empty briefly.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and marked_processes(token) != [sleeper]:
        time.sleep(0.05)
    assert marked_processes(token) == [sleeper]
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(sleeper):
        time.sleep(0.1)
    assert not _alive(sleeper)
    assert marked_processes(token) == []


def test_a_normal_close_leaves_no_watcher() -> None:
    life = Lifetime()
    watcher = life.watcher
    assert watcher is not None
    child = subprocess.Popen(["sleep", "300"], env=life.env(os.environ))
    life.close()
    child.wait(timeout=5)
    assert watcher.poll() is not None and life.watcher is None
    assert sweep(life.token, timeout=1) == []


@pytest.mark.e2e
def test_sigkill_of_the_cli_leaves_no_process_of_the_run(tmp_path: Path) -> None:
    scenario = tmp_path / "lifetime.yaml"
    scenario.write_text(SCENARIO)
    run_dir = tmp_path / "run"
    cli = subprocess.Popen(
        [sys.executable, "-m", "fedrobust.cli", "run", str(scenario), "--out", str(run_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if json.loads((run_dir / "metrics.json").read_text())["rounds"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        assert cli.poll() is None, "the run ended before round 1"
        time.sleep(0.2)
    else:
        cli.kill()
        pytest.fail("no round within 240 s")
    before = sorted({*descendants([cli.pid]), *_mentioning(str(run_dir))} - {cli.pid})
    assert before, "the run started no processes?"

    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    time.sleep(5)

    survivors = [pid for pid in before if _alive(pid)]
    survivors += [pid for pid in _mentioning(str(run_dir)) if pid not in survivors]
    assert survivors == [], _describe(survivors)
    rounds = len(json.loads((run_dir / "metrics.json").read_text())["rounds"])
    time.sleep(2)
    assert len(json.loads((run_dir / "metrics.json").read_text())["rounds"]) == rounds
