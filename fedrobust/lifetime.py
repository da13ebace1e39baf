"""Every process a run starts dies with the process that started it, even after SIGKILL.

Two mechanisms, both explicit:

1. **Direct children** (the SuperLink, ``flwr run``, SuperNodes) are started with
   :func:`die_with_parent` as ``preexec_fn``: on Linux it sets ``PR_SET_PDEATHSIG`` to
   SIGKILL, so the kernel kills them the moment their parent goes.
2. **Grandchildren** (Flower's SuperExec and apps, the simulation's Ray processes) are
   started by Flower, in sessions of their own; no signal reaches them. So every process
   of a run carries a marker in its environment, ``FEDROBUST_LIFETIME=<token>``
   (:meth:`Lifetime.env`; children inherit their parent's environment), and a small
   watcher process (``python -m fedrobust.lifetime <token>``, in a session of its own)
   holds the read end of a pipe whose write end only the starting process holds. When
   that process ends, however it ends, the kernel closes the pipe; the watcher reads
   end-of-file, kills every process whose environment carries the token (and their
   descendants), and exits.

A normal exit goes the same way: :meth:`Lifetime.close` closes the pipe and waits for the
watcher's sweep, which by then usually finds nothing. The watcher leaves nothing behind.
Outside Linux (no ``/proc``, no ``prctl``) both mechanisms do nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping

ENV_KEY = "FEDROBUST_LIFETIME"
PR_SET_PDEATHSIG = 1
SWEEP_SECONDS = 10.0


def die_with_parent() -> None:
    """``preexec_fn``: the kernel SIGKILLs this child when its parent dies (Linux only).

    Runs in the child between fork and exec. The parent here is the thread that called
    ``Popen``: start children from the main thread (or a thread that lives as long).
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def marked_processes(token: str) -> list[int]:
    """Pids of the live processes whose environment holds ``FEDROBUST_LIFETIME=token``."""
    marker = f"{ENV_KEY}={token}".encode()
    found = []
    for entry in _pids():
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:  # gone, or another user's
            continue
        if marker in environ.split(b"\0"):
            found.append(entry)
    return found


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process, from ``/proc/<pid>/stat``."""
    table = {}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        table[pid] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return table


def descendants(pids: list[int]) -> list[int]:
    """Every live process below any of ``pids`` (not ``pids`` themselves)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    frontier = [child for pid in pids for child in children.get(pid, [])]
    while frontier:
        current = frontier.pop()
        found.append(current)
        frontier.extend(children.get(current, []))
    return found


def sweep(token: str, timeout: float = SWEEP_SECONDS) -> list[int]:
    """SIGKILL every process marked with ``token`` and its descendants; return their pids.

    Repeats until two scans in a row find none (a dying parent may have started one more,
    and a process in the middle of ``exec`` shows an empty environment for a moment) or
    ``timeout`` seconds pass. Never kills the calling process.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    empty_scans = 0
    while time.monotonic() < deadline:
        marked = marked_processes(token)
        doomed = [pid for pid in {*marked, *descendants(marked)} if pid != os.getpid()]
        empty_scans = 0 if doomed else empty_scans + 1
        if empty_scans == 2:
            break
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return killed


class Lifetime:
    """The processes of one run: marked, watched, and killed when the starter ends.

    Starts the watcher at once; :meth:`close` (or leaving the ``with`` block) ends it
    after a last sweep. Pass :meth:`env` to every process of the run and
    :func:`die_with_parent` as ``preexec_fn`` to every direct child.
    """

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        read_end, self._write_end = os.pipe()  # neither end is inherited by other children
        env = {k: v for k, v in os.environ.items() if k != ENV_KEY}
        try:
            self.watcher: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "fedrobust.lifetime", self.token],
                stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(read_end)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus this run's marker."""
        return {**base, ENV_KEY: self.token}

    def close(self, timeout: float = SWEEP_SECONDS + 5) -> None:
        """Let the watcher sweep what is left of the run, and wait for it to exit."""
        if self.watcher is None:
            return
        os.close(self._write_end)
        try:
            self.watcher.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.watcher.kill()
            self.watcher.wait()
        self.watcher = None

    def __enter__(self) -> Lifetime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _watch(token: str) -> None:
    """The watcher: block until stdin reaches end-of-file, then sweep ``token``'s processes."""
    while os.read(0, 4096):
        pass
    sweep(token)


if __name__ == "__main__":
    _watch(sys.argv[1])
