"""The server side of SecAgg+: stage messages out, replies in, the unmasked sum at the end.

Survivor sets: ``S0`` the sampled clients, ``S1`` those that sent public keys (setup), ``S2``
those that sent share ciphertexts (share_keys), ``S3`` those whose masked vectors arrived
(collect_masked_vectors), ``S4`` those that sent their shares (unmask). The aggregate is over
``S3``. A client's *group* (``share_groups``) restricted to ``S1`` is where its secrets are shared;
``S1 \\ S2`` clients take no further part (nobody masks with them). Two clients of ``S2`` are
*partners* (they exchange shares and mask with each other) when each sent the other a
ciphertext; a client leaves out a member whose public keys it cannot use. For every ``u`` in
``S3`` the server rebuilds ``b_u`` and removes ``PRG(b_u)``; for every ``d`` in ``S2 \\ S3`` it
rebuilds ``sk2_d`` and removes the pairwise masks ``d`` shares with its partners in ``S3``
(:mod:`fedrobust.secagg.unmask`), then checks the sum's range before decoding it.

The server only ever holds masked vectors, and only as a running sum: each reply's vectors are
added and dropped.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedrobust.secagg.checks import (
    is_bytes_list,
    is_int_list,
    masked_problem,
    share_fits,
)
from fedrobust.secagg.config import SecAggParams, Stage, resolve_params
from fedrobust.secagg.encoding import EXTRA_SHAPES, IntArrays, add_masks, wire_dtype
from fedrobust.secagg.graph import share_groups
from fedrobust.secagg.keys import load_peer_key
from fedrobust.secagg.unmask import SecAggFailure, SecAggResult, unmask_sum

Message = dict[str, Any]
Replies = Mapping[int, Mapping[str, Any]]
_STAGES = list(Stage)


class SecAggServer:
    """The server's side of one SecAgg+ round (transport-free).

    For each stage, in order: call ``<stage>_messages()`` (node id -> message dict), deliver
    them, then ``receive_<stage>(replies)`` with the replies that came back (node id -> reply
    dict; a missing or malformed reply means that node dropped at that stage). ``receive_*``
    returns a :class:`SecAggFailure` when the round can no longer succeed; after that, stage
    methods raise. Finally :meth:`aggregate`. :meth:`messages` and :meth:`receive` do the same
    for whichever stage is next.

    Parameters
    ----------
    params : SecAggParams
        The round's parameters; resolved here with ``len(node_ids)`` clients.
    node_ids : Sequence[int]
        The sampled clients.
    vector_shapes : Sequence[tuple[int, ...]]
        Shapes of the update arrays.
    rng : random.Random, optional
        Source of the neighbour graph's permutation (``random.SystemRandom()`` when omitted).

    Attributes
    ----------
    params : SecAggParams
        The resolved parameters.
    groups : dict[int, list[int]]
        Every client's share group (sorted, itself included).
    survivors : dict[str, list[int]]
        Stage -> sorted ids of the clients whose valid reply arrived at that stage.
    dropouts : dict[str, int]
        Stage -> number of clients that dropped (or replied invalidly) at that stage.
    rejected : dict[str, dict[int, str]]
        Stage -> node id -> why its reply was invalid.
    clipped : int | None
        Total values clipped by the contributing clients, once aggregated.
    failure : SecAggFailure | None
        Set when the round failed.
    """

    def __init__(
        self,
        params: SecAggParams,
        node_ids: Sequence[int],
        vector_shapes: Sequence[tuple[int, ...]],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.node_ids = sorted(int(v) for v in node_ids)
        self.vector_shapes = [tuple(int(d) for d in shape) for shape in vector_shapes]
        self.num_values = sum(int(np.prod(shape)) for shape in self.vector_shapes)
        self.params = resolve_params(params, len(self.node_ids), self.num_values)
        self.groups = share_groups(self.node_ids, int(self.params.num_shares), rng)
        self.survivors: dict[str, list[int]] = {}
        self.dropouts: dict[str, int] = {}
        self.rejected: dict[str, dict[int, str]] = {}
        self.clipped: int | None = None
        self.failure: SecAggFailure | None = None
        self._threshold = int(self.params.reconstruction_threshold)
        self._next = 0  # index into _STAGES of the next stage to send
        self._sent: Stage | None = None  # stage whose messages await replies
        self._public_keys: dict[int, tuple[bytes, bytes]] = {}
        self._commitments: dict[int, bytes] = {}  # commitment to each client's mask seed
        self._partners: dict[int, list[int]] = {}  # S2 client -> its partners (sorted)
        self._share_groups: dict[int, list[int]] = {}  # group ∩ S1, as sent at share_keys
        self._inbox: dict[int, list[tuple[int, bytes]]] = {}
        self._masked_sum: IntArrays | None = None
        self._b_pool: dict[int, list[bytes]] = {}
        self._sk2_pool: dict[int, list[bytes]] = {}
        self._result: SecAggResult | SecAggFailure | None = None

    # ------------------------------------------------------------ bookkeeping

    @property
    def next_stage(self) -> Stage | None:
        """The stage whose messages come next (``None`` when all four are done)."""
        return _STAGES[self._next] if self._next < len(_STAGES) else None

    def _alive(self, stage: Stage) -> list[int]:
        index = _STAGES.index(stage)
        return self.node_ids if index == 0 else self.survivors[_STAGES[index - 1]]

    def _start(self, stage: Stage) -> None:
        if self.failure is not None:
            raise RuntimeError(f"SecAgg+ round already failed: {self.failure}")
        if self.next_stage != stage or self._sent is not None:
            raise RuntimeError(f"cannot send {stage!r} now (next stage: {self.next_stage!r})")
        self._sent = stage

    def _finish(self, stage: Stage) -> None:
        if self._sent != stage:
            raise RuntimeError(f"no {stage!r} messages were sent")
        self._sent = None
        self._next += 1

    def _record(self, stage: Stage, valid: list[int], rejected: dict[int, str]) -> None:
        self.survivors[stage] = sorted(valid)
        self.dropouts[stage] = len(self._alive(stage)) - len(valid)
        self.rejected[stage] = rejected

    def _fail(self, stage: str, reason: str) -> SecAggFailure:
        self.failure = SecAggFailure(stage, reason)
        return self.failure

    def _holders(self, owner: int) -> list[int]:
        """Who holds shares of ``owner``'s secrets: itself and its partners (its group
        before share_keys)."""
        if owner in self._partners:
            return [owner, *self._partners[owner]]
        return self.groups[owner]

    def _check_survivors(self, stage: Stage, owners: Sequence[int]) -> SecAggFailure | None:
        """Fail unless ``t`` clients survived ``stage`` and every owner keeps ``t`` holders."""
        alive = self.survivors[stage]
        before = len(self._alive(stage))
        if len(alive) < self._threshold:
            return self._fail(
                stage,
                f"{stage}: {len(alive)} of {before} clients survived ({before - len(alive)} "
                f"dropped), below reconstruction_threshold={self._threshold}",
            )
        alive_set = set(alive)
        for owner in owners:
            members = self._holders(owner)
            holders = [v for v in members if v in alive_set]
            if len(holders) < self._threshold:
                return self._fail(
                    stage,
                    f"{stage}: node {owner}'s share group has {len(holders)} live members of "
                    f"{len(members)}, below reconstruction_threshold={self._threshold}",
                )
        return None

    # ------------------------------------------------------------------ setup

    def setup_messages(self) -> dict[int, Message]:
        """Stage 1 messages: the parameters.

        Returns
        -------
        dict[int, dict[str, Any]]
            Node id -> ``{"stage": "setup", "num_clients": int, "num_values": int,
            **params.to_dict()}``.
        """
        self._start(Stage.SETUP)
        message: Message = {
            "stage": str(Stage.SETUP),
            "num_clients": len(self.node_ids),
            "num_values": self.num_values,
            **self.params.to_dict(),
        }
        return {nid: dict(message) for nid in self.node_ids}

    def receive_setup(self, replies: Replies) -> SecAggFailure | None:
        """Stage 1 replies: ``{"pk1": bytes, "pk2": bytes, "b_commitment": bytes}`` per node.

        A reply whose keys are unusable (not 32-byte X25519 keys, small-order points) or whose
        commitment is not 32 bytes is rejected: that client drops here.

        Parameters
        ----------
        replies : Mapping[int, Mapping[str, Any]]
            Node id -> reply.

        Returns
        -------
        SecAggFailure | None
            The failure, if the round can no longer succeed.
        """
        self._finish(Stage.SETUP)
        valid: list[int] = []
        rejected: dict[int, str] = {}
        for nid in self.node_ids:
            reply = replies.get(nid)
            if reply is None:
                continue
            pk1, pk2 = reply.get("pk1"), reply.get("pk2")
            commitment = reply.get("b_commitment")
            if load_peer_key(pk1) is None or load_peer_key(pk2) is None:
                rejected[nid] = "invalid public keys: not 32-byte X25519 public keys"
                continue
            if not (isinstance(commitment, bytes) and len(commitment) == 32):
                rejected[nid] = "b_commitment must be 32 bytes"
                continue
            assert isinstance(pk1, bytes) and isinstance(pk2, bytes)
            self._public_keys[nid] = (pk1, pk2)
            self._commitments[nid] = commitment
            valid.append(nid)
        # A key sent by two clients would let one impersonate the other: drop both.
        seen: dict[bytes, list[int]] = {}
        for nid in valid:
            for key in self._public_keys[nid]:
                seen.setdefault(key, []).append(nid)
        for owners in seen.values():
            if len(owners) > 1:
                for nid in owners:
                    rejected[nid] = "public key shared with another client"
        valid = [nid for nid in valid if nid not in rejected]
        self._record(Stage.SETUP, valid, rejected)
        return self._check_survivors(Stage.SETUP, valid)

    # ------------------------------------------------------------- share keys

    def share_keys_messages(self) -> dict[int, Message]:
        """Stage 2 messages: each client's share group (within ``S1``) and its public keys.

        Returns
        -------
        dict[int, dict[str, Any]]
            Node id -> ``{"stage": "share_keys", "node_ids": list[int], "pk1": list[bytes],
            "pk2": list[bytes]}`` (sorted ids, the client itself included, keys aligned).
        """
        self._start(Stage.SHARE_KEYS)
        alive = set(self.survivors[Stage.SETUP])
        messages: dict[int, Message] = {}
        for nid in self.survivors[Stage.SETUP]:
            group = [v for v in self.groups[nid] if v in alive]
            self._share_groups[nid] = group
            messages[nid] = {
                "stage": str(Stage.SHARE_KEYS),
                "node_ids": group,
                "pk1": [self._public_keys[v][0] for v in group],
                "pk2": [self._public_keys[v][1] for v in group],
            }
        return messages

    def receive_share_keys(self, replies: Replies) -> SecAggFailure | None:
        """Stage 2 replies: ``{"destinations": list[int], "ciphertexts": list[bytes]}``.

        A reply addresses other members of the client's group, each at most once (a client
        leaves out a member whose public keys it cannot use). A ciphertext is delivered only
        between partners, clients that addressed each other.

        Parameters
        ----------
        replies : Mapping[int, Mapping[str, Any]]
            Node id -> reply.

        Returns
        -------
        SecAggFailure | None
            The failure, if the round can no longer succeed.
        """
        self._finish(Stage.SHARE_KEYS)
        valid: list[int] = []
        rejected: dict[int, str] = {}
        outbox: dict[int, list[tuple[int, bytes]]] = {}
        for nid in self.survivors[Stage.SETUP]:
            reply = replies.get(nid)
            if reply is None:
                continue
            destinations = reply.get("destinations")
            ciphertexts = reply.get("ciphertexts")
            others = set(self._share_groups[nid]) - {nid}
            if not (
                is_int_list(destinations)
                and len(set(destinations)) == len(destinations)
                and set(destinations) <= others
            ):
                rejected[nid] = f"destinations {destinations} are not distinct members of "
                rejected[nid] += f"the group {sorted(others)}"
                continue
            if not is_bytes_list(ciphertexts, len(destinations)):
                rejected[nid] = "ciphertexts must be bytes, one per destination"
                continue
            outbox[nid] = list(zip(destinations, ciphertexts, strict=True))
            valid.append(nid)
        # A client left with fewer than t - 1 partners (its neighbours could not use its
        # keys) could not have its secrets rebuilt: it drops here, which may leave others
        # with too few partners in turn.
        while True:
            partners = self._mutual_partners(valid, outbox)
            lonely = [nid for nid in valid if len(partners[nid]) + 1 < self._threshold]
            if not lonely or len(valid) < self._threshold:  # (too few: the round fails)
                break
            for nid in lonely:
                rejected[nid] = (
                    f"{len(partners[nid])} partners exchanged shares with it, below "
                    f"reconstruction_threshold - 1 = {self._threshold - 1}"
                )
            valid = [nid for nid in valid if nid not in lonely]
        self._record(Stage.SHARE_KEYS, valid, rejected)
        self._partners = {nid: sorted(partners[nid]) for nid in valid}
        self._inbox = {nid: [] for nid in valid}
        for src in valid:
            for dst, ciphertext in outbox[src]:
                if dst in partners[src]:  # partners are in valid and addressed src back
                    self._inbox[dst].append((src, ciphertext))
        return self._check_survivors(Stage.SHARE_KEYS, valid)

    @staticmethod
    def _mutual_partners(
        valid: Sequence[int], outbox: Mapping[int, list[tuple[int, bytes]]]
    ) -> dict[int, set[int]]:
        """Client -> the clients of ``valid`` it and that addressed each other a ciphertext."""
        addressed = {src: {dst for dst, _ in outbox[src]} for src in valid}
        return {
            nid: {
                other for other in addressed[nid] if other in addressed and nid in addressed[other]
            }
            for nid in valid
        }

    # ------------------------------------------------- collect masked vectors

    def collect_masked_vectors_messages(self) -> dict[int, Message]:
        """Stage 3 messages: the ciphertexts addressed to each client in ``S2``.

        Returns
        -------
        dict[int, dict[str, Any]]
            Node id -> ``{"stage": "collect_masked_vectors", "sources": list[int],
            "ciphertexts": list[bytes]}`` (aligned, sorted by source).
        """
        self._start(Stage.COLLECT_MASKED_VECTORS)
        messages: dict[int, Message] = {}
        for nid, inbox in self._inbox.items():
            ordered = sorted(inbox)
            messages[nid] = {
                "stage": str(Stage.COLLECT_MASKED_VECTORS),
                "sources": [src for src, _ in ordered],
                "ciphertexts": [ciphertext for _, ciphertext in ordered],
            }
        return messages

    def _check_masked(self, vectors: object) -> str | None:
        return masked_problem(vectors, self.vector_shapes + EXTRA_SHAPES, self.params.modulus_range)

    def receive_collect_masked_vectors(self, replies: Replies) -> SecAggFailure | None:
        """Stage 3 replies: ``{"masked_vectors": list[NDArray[np.int64]]}``.

        Each valid reply is added to the running masked sum and not kept.

        Parameters
        ----------
        replies : Mapping[int, Mapping[str, Any]]
            Node id -> reply.

        Returns
        -------
        SecAggFailure | None
            The failure, if the round can no longer succeed.
        """
        self._finish(Stage.COLLECT_MASKED_VECTORS)
        shapes = self.vector_shapes + EXTRA_SHAPES
        dtype = wire_dtype(int(self.params.modulus_range))
        total: IntArrays = [np.zeros(shape, dtype=dtype) for shape in shapes]
        valid: list[int] = []
        rejected: dict[int, str] = {}
        for nid in self.survivors[Stage.SHARE_KEYS]:
            reply = replies.get(nid)
            if reply is None:
                continue
            vectors = reply.get("masked_vectors")
            problem = self._check_masked(vectors)
            if problem is not None:
                rejected[nid] = problem
                continue
            # in [0, modulus) (checked): exact in the wire type, whatever integer type came
            add_masks(total, [v.astype(dtype) for v in vectors], 1, self.params)
            valid.append(nid)
        self._inbox = {}
        self._masked_sum = total
        self._record(Stage.COLLECT_MASKED_VECTORS, valid, rejected)
        dropped = sorted(set(self.survivors[Stage.SHARE_KEYS]) - set(valid))
        # Both b_u (u in S3) and sk2_d (d dropped here) must stay recoverable from S3.
        return self._check_survivors(Stage.COLLECT_MASKED_VECTORS, valid + dropped)

    # ----------------------------------------------------------------- unmask

    def _unmask_lists(self, nid: int) -> tuple[list[int], list[int]]:
        contributors = set(self.survivors[Stage.COLLECT_MASKED_VECTORS])
        holders = sorted(self._holders(nid))
        survivors = [v for v in holders if v in contributors]
        dropped = [v for v in holders if v not in contributors]
        return survivors, dropped

    def unmask_messages(self) -> dict[int, Message]:
        """Stage 4 messages: which group members survived and which dropped after share_keys.

        Returns
        -------
        dict[int, dict[str, Any]]
            Node id -> ``{"stage": "unmask", "survivors": list[int], "dropped": list[int]}``
            (the client and its partners in ``S3``; its partners in ``S2 \\ S3``).
        """
        self._start(Stage.UNMASK)
        messages: dict[int, Message] = {}
        for nid in self.survivors[Stage.COLLECT_MASKED_VECTORS]:
            survivors, dropped = self._unmask_lists(nid)
            messages[nid] = {"stage": str(Stage.UNMASK), "survivors": survivors, "dropped": dropped}
        return messages

    def receive_unmask(self, replies: Replies) -> SecAggFailure | None:
        """Stage 4 replies: ``{"survivor_ids", "b_shares", "dropped_ids", "sk2_shares"}``.

        An empty share means the client holds none (its partner's ciphertext did not open); a
        share whose index is not the holder's place in the owner's group is discarded. Shares
        whose content is wrong are caught when the secret is rebuilt (:mod:`~.unmask`).

        Parameters
        ----------
        replies : Mapping[int, Mapping[str, Any]]
            Node id -> reply.

        Returns
        -------
        SecAggFailure | None
            The failure, if some secret now has fewer than ``reconstruction_threshold`` shares.
        """
        self._finish(Stage.UNMASK)
        contributors = self.survivors[Stage.COLLECT_MASKED_VECTORS]
        dropped_all = sorted(set(self.survivors[Stage.SHARE_KEYS]) - set(contributors))
        self._b_pool = {nid: [] for nid in contributors}
        self._sk2_pool = {nid: [] for nid in dropped_all}
        valid: list[int] = []
        rejected: dict[int, str] = {}
        for nid in contributors:
            reply = replies.get(nid)
            if reply is None:
                continue
            survivors, dropped = self._unmask_lists(nid)
            if reply.get("survivor_ids") != survivors or reply.get("dropped_ids") != dropped:
                rejected[nid] = "survivor_ids/dropped_ids differ from the ones sent"
                continue
            b_shares, sk2_shares = reply.get("b_shares"), reply.get("sk2_shares")
            if not (
                is_bytes_list(b_shares, len(survivors)) and is_bytes_list(sk2_shares, len(dropped))
            ):
                rejected[nid] = "b_shares/sk2_shares must be bytes, one per id"
                continue
            for owner, share in zip(survivors, b_shares, strict=True):
                if self._share_fits(owner, nid, share):
                    self._b_pool[owner].append(share)
            for owner, share in zip(dropped, sk2_shares, strict=True):
                if self._share_fits(owner, nid, share):
                    self._sk2_pool[owner].append(share)
            valid.append(nid)
        self._record(Stage.UNMASK, valid, rejected)
        if len(valid) < self._threshold:
            return self._fail(
                Stage.UNMASK,
                f"unmask: {len(valid)} of {len(contributors)} clients sent shares, below "
                f"reconstruction_threshold={self._threshold}",
            )
        for kind, pool in (("mask seed b", self._b_pool), ("masking key sk2", self._sk2_pool)):
            for owner, shares in pool.items():
                if len(shares) < self._threshold:
                    return self._fail(
                        Stage.UNMASK,
                        f"unmask: {len(shares)} shares of node {owner}'s {kind} came back, "
                        f"below reconstruction_threshold={self._threshold}",
                    )
        return None

    def _share_fits(self, owner: int, holder: int, share: bytes) -> bool:
        """Whether ``share`` can be ``holder``'s share of ``owner``'s secret."""
        return share_fits(share, self._share_groups[owner].index(holder) + 1)

    # -------------------------------------------------------------- aggregate

    def aggregate(self) -> SecAggResult | SecAggFailure:
        """Remove the masks and decode the sum over the contributing clients (``S3``).

        Returns
        -------
        SecAggResult | SecAggFailure
            The aggregate, or why there is none (a stage failed, or a secret could not be
            rebuilt from its shares).
        """
        if self._result is not None:
            return self._result
        if self.failure is not None:
            return self.failure
        if self.next_stage is not None or self._masked_sum is None:
            raise RuntimeError(f"aggregate before the round ended (next: {self.next_stage!r})")
        self._result = self._unmask_and_decode(self._masked_sum)
        self._masked_sum = None
        self._b_pool, self._sk2_pool = {}, {}
        return self._result

    def _unmask_and_decode(self, total: IntArrays) -> SecAggResult | SecAggFailure:
        contributors = self.survivors[Stage.COLLECT_MASKED_VECTORS]
        public_keys2 = {nid: keys[1] for nid, keys in self._public_keys.items()}
        result = unmask_sum(
            total, self.params, contributors, self._b_pool, self._sk2_pool,
            public_keys2, self._commitments, self._partners,
        )  # fmt: skip
        if isinstance(result, SecAggFailure):
            self.failure = result
            return result
        self.clipped = result.clipped
        return result

    def weighted_mean(self) -> list[NDArray[np.float64]] | SecAggFailure:
        """Return the weighted mean of the contributing clients' clipped updates.

        Returns
        -------
        list[NDArray[np.float64]] | SecAggFailure
            ``weighted_sum / total_weight`` per array, or why there is none.
        """
        result = self.aggregate()
        if isinstance(result, SecAggFailure):
            return result
        return result.weighted_mean()

    # ------------------------------------------------------ generic dispatch

    def messages(self) -> dict[int, Message]:
        """Return the next stage's messages (see the ``*_messages`` methods).

        Returns
        -------
        dict[int, dict[str, Any]]
            Node id -> message.
        """
        stage = self.next_stage
        if stage is None:
            raise RuntimeError("all SecAgg+ stages are done")
        return {
            Stage.SETUP: self.setup_messages,
            Stage.SHARE_KEYS: self.share_keys_messages,
            Stage.COLLECT_MASKED_VECTORS: self.collect_masked_vectors_messages,
            Stage.UNMASK: self.unmask_messages,
        }[stage]()

    def receive(self, replies: Replies) -> SecAggFailure | None:
        """Consume the replies to the messages last returned by :meth:`messages`.

        Parameters
        ----------
        replies : Mapping[int, Mapping[str, Any]]
            Node id -> reply.

        Returns
        -------
        SecAggFailure | None
            The failure, if the round can no longer succeed.
        """
        if self._sent is None:
            raise RuntimeError("no messages are awaiting replies")
        return {
            Stage.SETUP: self.receive_setup,
            Stage.SHARE_KEYS: self.receive_share_keys,
            Stage.COLLECT_MASKED_VECTORS: self.receive_collect_masked_vectors,
            Stage.UNMASK: self.receive_unmask,
        }[self._sent](replies)
