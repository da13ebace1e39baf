"""A client's SecAgg+ protocol instances between messages: one state per round.

Flower rebuilds the ClientApp for every message, so a client keeps each instance's
:class:`~fedrobust.secagg.client.SecAggClient` state in its ``Context.state``, as the
ConfigRecord ``secagg-state.<round>``. A pipelined round has two instances in flight (this
round's and the next one's, :mod:`fedrobust.secagg.transport`); they share nothing:

- setup always starts a fresh instance (new key pairs, new mask seed), erasing whatever
  state that round held;
- every other stage needs its instance's state and the stage order it records (a replayed
  or out-of-order stage raises before anything is revealed or trained);
- an instance is bound to one training round: a message holds at most one
  collect_masked_vectors part, whose round must be the training instruction's
  ``server-round``, and the client keeps the highest round it masked an update for
  (``secagg-trained``): setup or collect_masked_vectors of that round or an earlier one is
  refused, so no server gets one round's update masked twice, under two sets of masks
  it could difference;
- a message's lowest round tells which instances are over: older states are erased (an
  instance the client dropped out of never comes back), and an instance is erased once
  its unmask has answered.

:meth:`ClientSessions.check` runs every one of these checks on a whole message before the
client trains or answers any part of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, RecordDict
from numpy.typing import NDArray

from fedrobust.secagg.client import SecAggClient
from fedrobust.secagg.config import SecAggParams, Stage

STATE_PREFIX = "secagg-state."
TRAINED_KEY = "secagg-trained"


class ClientSessions:
    """The SecAgg+ instances a client holds, read from and written back to its state.

    Parameters
    ----------
    state : RecordDict
        The client's ``Context.state``; changed only by :meth:`save`.
    node_id : int
        This client's node id.
    """

    def __init__(self, state: RecordDict, node_id: int) -> None:
        self._state = state
        self.node_id = int(node_id)
        self._clients: dict[int, SecAggClient] = {}
        self._erased: set[int] = set()
        trained = state.config_records.get(TRAINED_KEY)
        #: The highest round this client masked an update for (0: none).
        self.trained = 0 if trained is None else int(trained["round"])  # type: ignore[arg-type]
        for key, record in state.config_records.items():
            if key.startswith(STATE_PREFIX) and key[len(STATE_PREFIX) :].isdigit():
                self._clients[int(key[len(STATE_PREFIX) :])] = SecAggClient.from_state_dict(record)

    @property
    def rounds(self) -> list[int]:
        """Rounds whose instance this client holds (ascending)."""
        return sorted(self._clients)

    def forget_before(self, rnd: int) -> None:
        """Erase the instances of rounds before ``rnd``: they are over."""
        for old in [r for r in self._clients if r < rnd]:
            self._erase(old)

    def check(self, parts: Mapping[int, Mapping[str, Any]], training_round: object) -> None:
        """Refuse a message unless every part of it may run now; nothing runs before.

        Parameters
        ----------
        parts : Mapping[int, Mapping[str, Any]]
            Round -> stage message, as :func:`~fedrobust.secagg.records.read_parts` reads them.
        training_round : object
            The training instruction's ``server-round`` (``None`` without one).

        Raises
        ------
        ValueError
            No part; an unknown stage; two collect_masked_vectors parts, or one whose round
            is not the training round; a setup or collect_masked_vectors for a round at or
            below the last one trained; a stage out of its instance's order; setup
            parameters that do not parse.
        """
        if not parts:
            raise ValueError("stage: a train.secagg message without a SecAgg+ stage")
        stages: dict[int, Stage] = {}
        for rnd, message in parts.items():
            try:
                stages[rnd] = Stage(str(message.get("stage")))
            except ValueError:
                raise ValueError(f"stage: unknown SecAgg+ stage {message.get('stage')!r}") from None
        collects = [rnd for rnd, stage in stages.items() if stage == Stage.COLLECT_MASKED_VECTORS]
        if len(collects) > 1:
            raise ValueError(f"stage: collect_masked_vectors for rounds {collects} at once")
        if collects and collects[0] != training_round:
            raise ValueError(
                f"stage: collect_masked_vectors of round {collects[0]} with the training "
                f"instruction of round {training_round!r}"
            )
        for rnd, stage in stages.items():
            if stage in (Stage.SETUP, Stage.COLLECT_MASKED_VECTORS) and rnd <= self.trained:
                raise ValueError(
                    f"stage: node {self.node_id} already masked its update of round "
                    f"{self.trained}; no {stage.value} for round {rnd} (replayed or reused round)"
                )
            if stage == Stage.SETUP:
                SecAggParams.from_dict(dict(parts[rnd]))
            else:
                self._client(rnd, stage).expect(stage)

    def step(
        self,
        rnd: int,
        message: Mapping[str, Any],
        update: Sequence[NDArray[np.floating]] | None = None,
        weight: float | None = None,
    ) -> dict[str, Any]:
        """Run round ``rnd``'s stage ``message["stage"]``; return the reply.

        Parameters
        ----------
        rnd : int
            The round of the instance.
        message : Mapping[str, Any]
            The stage message.
        update, weight
            The update to mask and its weight (collect_masked_vectors only).

        Returns
        -------
        dict[str, Any]
            The stage's reply.

        Raises
        ------
        ValueError
            An unknown, replayed or out-of-order stage, or an invalid message.
        """
        try:
            stage = Stage(str(message.get("stage")))
        except ValueError:
            raise ValueError(f"stage: unknown SecAgg+ stage {message.get('stage')!r}") from None
        if stage == Stage.SETUP:
            self._erase(rnd)
            client = SecAggClient(self.node_id, SecAggParams.from_dict(dict(message)))
            self._clients[rnd] = client
            return client.setup(message)
        client = self._client(rnd, stage)
        if stage == Stage.COLLECT_MASKED_VECTORS:
            if update is None or weight is None:
                raise ValueError("collect_masked_vectors: no update to mask")
            if rnd <= self.trained:
                raise ValueError(f"stage: round {rnd} is at or below the last one trained")
            reply = client.collect_masked_vectors(message, update, weight)
            self.trained = rnd
            return reply
        if stage == Stage.SHARE_KEYS:
            return client.share_keys(message)
        reply = client.unmask(message)  # erases the instance's secrets
        self._erase(rnd)
        return reply

    def save(self) -> None:
        """Write every instance's state back (and drop the erased ones)."""
        for rnd in self._erased:
            key = f"{STATE_PREFIX}{rnd}"
            if key in self._state:
                del self._state[key]
        for rnd, client in self._clients.items():
            self._state.config_records[f"{STATE_PREFIX}{rnd}"] = ConfigRecord(client.state_dict())
        if self.trained:
            self._state.config_records[TRAINED_KEY] = ConfigRecord({"round": self.trained})

    def _client(self, rnd: int, stage: Stage | str) -> SecAggClient:
        client = self._clients.get(rnd)
        if client is None:
            raise ValueError(
                f"stage: node {self.node_id} holds no SecAgg+ instance of round {rnd} for "
                f"{str(stage)!r} (no setup, or it is over)"
            )
        return client

    def _erase(self, rnd: int) -> None:
        if self._clients.pop(rnd, None) is not None or f"{STATE_PREFIX}{rnd}" in self._state:
            self._erased.add(rnd)
