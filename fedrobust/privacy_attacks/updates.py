"""The updates a curious server keeps for a gradient-inversion attack, one file each.

Only what the server really receives is recorded: a client's reply in a plain round, the
unmasked aggregate under SecAgg+ (it never sees a single client's update there). Each
file holds the global weights the round started from (``before``) and the weights that
came back (``after``), who they came from and the digest of the scenario that recorded
them, so a later ``fedrobust privacy-attack`` never mixes in another run's files.

The files are as sensitive as the server's view of the round: they are written only when
``evaluation.privacy_attacks`` asks for an inversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from fedrobust.errors import FedrobustError
from fedrobust.rundir import write_atomic

UPDATES_DIR = "updates"
_NAME = re.compile(r"^round-(\d+)-(client-(\d+)|aggregate)\.pt$")


@dataclass(frozen=True)
class RecordedUpdate:
    """One update as the server received it.

    Parameters
    ----------
    round : int
        The round it answered.
    kind : str
        ``client`` (one client's reply) or ``aggregate`` (SecAgg+'s unmasked mean).
    clients : tuple[int, ...]
        The partition that sent it, or the contributors to the aggregate.
    num_examples : int
        The training examples behind it (as the clients reported them).
    before, after : dict[str, torch.Tensor]
        Global weights sent, weights received.
    digest : str
        ``Scenario.resume_digest()`` of the run that recorded it.
    """

    round: int
    kind: Literal["client", "aggregate"]
    clients: tuple[int, ...]
    num_examples: int
    before: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]
    digest: str

    @property
    def label(self) -> str:
        """``round 3, client 0`` or ``round 3, aggregate of 5``."""
        who = (
            f"client {self.clients[0]}"
            if self.kind == "client"
            else f"aggregate of {len(self.clients)}"
        )
        return f"round {self.round}, {who}"

    @property
    def stem(self) -> str:
        """The file name without suffix (also names its picture)."""
        who = f"client-{self.clients[0]}" if self.kind == "client" else "aggregate"
        return f"round-{self.round}-{who}"


def save_update(directory: Path, update: RecordedUpdate) -> Path:
    """Write ``update`` into ``directory/updates/`` atomically."""
    doc: dict[str, Any] = {
        "round": update.round,
        "kind": update.kind,
        "clients": list(update.clients),
        "num_examples": update.num_examples,
        "before": update.before,
        "after": update.after,
        "digest": update.digest,
    }
    path = directory / UPDATES_DIR / f"{update.stem}.pt"
    return write_atomic(path, lambda handle: torch.save(doc, handle))


def recorded_updates(directory: Path, digest: str) -> list[RecordedUpdate]:
    """Every update recorded in ``directory`` by the scenario with ``digest``, by round
    and client (files of another scenario, an older run in the same directory, are
    skipped)."""
    found = []
    folder = directory / UPDATES_DIR
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        if not _NAME.match(path.name):
            continue
        try:
            doc = torch.load(path, weights_only=True)
            update = RecordedUpdate(
                round=int(doc["round"]),
                kind=doc["kind"],
                clients=tuple(int(c) for c in doc["clients"]),
                num_examples=int(doc["num_examples"]),
                before=dict(doc["before"]),
                after=dict(doc["after"]),
                digest=str(doc["digest"]),
            )
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a bad input
            raise FedrobustError(str(path), f"not a recorded update ({exc})") from None
        if update.digest == digest:
            found.append(update)
    return sorted(found, key=lambda u: (u.round, u.kind, u.clients))


def select_updates(
    updates: list[RecordedUpdate], *, client: int | None, rnd: int | None
) -> list[RecordedUpdate]:
    """The recorded updates ``--client`` and ``--round`` ask for (``None``: all).

    Raises
    ------
    FedrobustError
        Naming ``--client`` or ``--round`` when nothing recorded matches, with what was.
    """
    if not updates:
        raise FedrobustError(
            "evaluation.privacy_attacks",
            "the run recorded no updates: add the section with attacks: [inversion] "
            "(and the clients and rounds to record) to the scenario and rerun",
        )
    if client is not None and all(u.kind == "aggregate" for u in updates):
        raise FedrobustError(
            "--client",
            "the run used SecAgg+: the server only ever saw the aggregate of each round; "
            "leave out --client to attack it",
        )
    if rnd is not None:
        rounds = sorted({u.round for u in updates})
        if rnd not in rounds:
            raise FedrobustError(
                "--round", f"no update recorded in round {rnd} (recorded rounds: {rounds})"
            )
        updates = [u for u in updates if u.round == rnd]
    if client is not None:
        chosen = [u for u in updates if u.kind == "client" and u.clients[0] == client]
        if not chosen:
            where = "" if rnd is None else f" in round {rnd}"
            seen = sorted({u.clients[0] for u in updates if u.kind == "client"})
            raise FedrobustError(
                "--client",
                f"no update of client {client} recorded{where} (it was not listed in "
                f"evaluation.privacy_attacks.clients, or did not train; recorded: {seen})",
            )
        updates = chosen
    return updates
