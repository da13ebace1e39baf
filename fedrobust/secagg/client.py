"""The client side of SecAgg+: one method per stage, its state serialisable between stages.

Keys: ``sk1``/``pk1`` agree the *encryption* keys for the share ciphertexts, ``sk2``/``pk2``
agree the *masking* seeds. The client Shamir-shares its private-mask seed ``b`` and its
``sk2`` with its share group; at unmask it reveals, per group member, the share of ``b`` (member
survived: its private mask must come off) or of ``sk2`` (member dropped: its pairwise masks with
the survivors must come off), never both for the same member.

Keys are X25519 (:mod:`~fedrobust.secagg.keys`); the secrets are shared with our own Shamir
scheme (:mod:`~fedrobust.secagg.shamir`). Each key agreement runs once per round: share_keys
derives, per group member, the share-encryption key ``HKDF(X25519(sk1, pk1_v))`` and the
pairwise-mask seed ``HKDF(X25519(sk2, pk2_v))`` and keeps them in the state until unmask.

A neighbour whose public key is unusable (not 32 bytes, a small-order point) is left out at
share_keys, as if it had dropped; one whose ciphertext does not decrypt (or is addressed
wrongly) leaves this client without its shares, but the pairwise mask stays, since both sides
agree on it from the public keys alone. Neither raises: one bad neighbour must not stop the
honest ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flwr.common.secure_aggregation.secaggplus_utils import (
    share_keys_plaintext_concat,
    share_keys_plaintext_separate,
)
from numpy.typing import NDArray

from fedrobust.secagg.config import SecAggParams, Stage, resolve_params
from fedrobust.secagg.encoding import add_masks, encode_update, masks, seed_commitment, to_wire
from fedrobust.secagg.keys import (
    ENCRYPTION_PURPOSE,
    MASK_PURPOSE,
    agree,
    decrypt,
    encrypt,
    generate_key_pair,
    load_peer_key,
    load_private_key,
)
from fedrobust.secagg.shamir import create_shares

_PREVIOUS_STAGE: dict[Stage, str] = {
    Stage.SETUP: "",
    Stage.SHARE_KEYS: Stage.SETUP,
    Stage.COLLECT_MASKED_VECTORS: Stage.SHARE_KEYS,
    Stage.UNMASK: Stage.COLLECT_MASKED_VECTORS,
}
_PARAM_PREFIX = "param_"


def _check_distinct(name: str, node_ids: Sequence[int]) -> None:
    if len(set(node_ids)) != len(node_ids):
        raise ValueError(f"{name}: node ids must be distinct, got {list(node_ids)}")


class SecAggClient:
    """One client's side of a SecAgg+ round.

    Call :meth:`setup`, :meth:`share_keys`, :meth:`collect_masked_vectors` and :meth:`unmask`
    in that order, once each, with the server's messages; each returns the reply. Between calls
    the client may be rebuilt with ``SecAggClient.from_state_dict(client.state_dict())``.

    Parameters
    ----------
    node_id : int
        This client's node id.
    params : SecAggParams
        The round's resolved parameters (e.g. ``SecAggParams.from_dict(setup_message)``); the
        setup message must carry the same.
    seed_bytes : bytes, optional
        The private-mask seed ``b`` (at least 16 bytes); 32 bytes from ``os.urandom`` when
        omitted.

    Notes
    -----
    The state holds the client's secret keys, the keys it agreed with its group and the shares
    it was sent, as Flower's own ``secaggplus_mod`` holds its secrets; they are erased once
    :meth:`unmask` has answered. The ClientApp must save the state after every stage: the
    stage order it records is what stops a second :meth:`unmask` (with other survivor/dropped
    lists) from revealing both secrets of a member, and what :meth:`expect` checks before the
    ClientApp trains for collect_masked_vectors.
    """

    def __init__(self, node_id: int, params: SecAggParams, seed_bytes: bytes | None = None) -> None:
        if seed_bytes is None:
            seed_bytes = os.urandom(32)
        if len(seed_bytes) < 16:
            raise ValueError("seed_bytes: need at least 16 bytes")
        self.node_id = int(node_id)
        self.params = params
        #: The last stage completed ("" before setup).
        self.stage: str = ""
        self.num_clients = 0
        self.num_values = 0
        self._seed = bytes(seed_bytes)
        self._sk1 = b""
        self._pk1 = b""
        self._sk2 = b""
        self._pk2 = b""
        # The share group (sorted, this client included) and its public keys, as sent.
        self._group: list[int] = []
        self._group_pk1: list[bytes] = []
        self._group_pk2: list[bytes] = []
        # Members left out at share_keys: their public keys are unusable.
        self._excluded: list[int] = []
        # Aligned with the group: the agreed share-encryption keys and pairwise-mask seeds
        # (b"" for this client and excluded members).
        self._enc_keys: list[bytes] = []
        self._mask_seeds: list[bytes] = []
        # Neighbours that exchanged shares with this client: its pairwise-mask partners.
        self._partners: list[int] = []
        # Owner node id -> share of its b / of its sk2 (own shares included).
        self._b_shares: dict[int, bytes] = {}
        self._sk2_shares: dict[int, bytes] = {}

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Return the client's state as a flat dict that fits a Flower ``ConfigRecord``.

        Returns
        -------
        dict[str, Any]
            Values are ``int``, ``float``, ``str``, ``bytes``, ``list[int]`` or ``list[bytes]``.
        """
        owners = sorted(self._b_shares)
        state: dict[str, Any] = {
            "node_id": self.node_id,
            "stage": str(self.stage),
            "num_clients": self.num_clients,
            "num_values": self.num_values,
            "seed": self._seed,
            "sk1": self._sk1,
            "pk1": self._pk1,
            "sk2": self._sk2,
            "pk2": self._pk2,
            "group": list(self._group),
            "group_pk1": list(self._group_pk1),
            "group_pk2": list(self._group_pk2),
            "excluded": list(self._excluded),
            "enc_keys": list(self._enc_keys),
            "mask_seeds": list(self._mask_seeds),
            "partners": list(self._partners),
            "share_owners": owners,
            "b_shares": [self._b_shares[owner] for owner in owners],
            "sk2_shares": [self._sk2_shares[owner] for owner in owners],
        }
        for key, value in self.params.to_dict().items():
            state[_PARAM_PREFIX + key] = value
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> SecAggClient:
        """Rebuild a client from :meth:`state_dict`'s output.

        Parameters
        ----------
        state : Mapping[str, Any]
            A state dict (or a ``ConfigRecord`` holding one).

        Returns
        -------
        SecAggClient
            The client, ready for its next stage.
        """
        params = SecAggParams.from_dict(
            {
                key[len(_PARAM_PREFIX) :]: value
                for key, value in state.items()
                if key.startswith(_PARAM_PREFIX)
            }
        )
        client = cls(int(state["node_id"]), params, bytes(state["seed"]))
        client.stage = str(state["stage"])
        client.num_clients = int(state["num_clients"])
        client.num_values = int(state["num_values"])
        client._sk1 = bytes(state["sk1"])
        client._pk1 = bytes(state["pk1"])
        client._sk2 = bytes(state["sk2"])
        client._pk2 = bytes(state["pk2"])
        client._group = [int(v) for v in state["group"]]
        client._group_pk1 = [bytes(v) for v in state["group_pk1"]]
        client._group_pk2 = [bytes(v) for v in state["group_pk2"]]
        client._excluded = [int(v) for v in state["excluded"]]
        client._enc_keys = [bytes(v) for v in state["enc_keys"]]
        client._mask_seeds = [bytes(v) for v in state["mask_seeds"]]
        client._partners = [int(v) for v in state["partners"]]
        owners = [int(v) for v in state["share_owners"]]
        client._b_shares = dict(zip(owners, state["b_shares"], strict=True))
        client._sk2_shares = dict(zip(owners, state["sk2_shares"], strict=True))
        return client

    # ----------------------------------------------------------------- stages

    def expect(self, stage: Stage | str) -> None:
        """Refuse ``stage`` unless it is the next one of this client's round.

        The order is setup -> share_keys -> collect_masked_vectors -> unmask, each once. The
        ClientApp calls this before it trains for collect_masked_vectors, so a replayed or
        out-of-order message costs no training (and no privacy budget).

        Parameters
        ----------
        stage : Stage | str
            The stage a message asks for.

        Raises
        ------
        ValueError
            When ``stage`` is unknown or not the next one (its message starts with
            ``"stage:"``).
        """
        try:
            wanted = Stage(str(stage))
        except ValueError:
            raise ValueError(f"stage: unknown SecAgg+ stage {stage!r}") from None
        if self.stage != _PREVIOUS_STAGE[wanted]:
            done = self.stage or "nothing"
            raise ValueError(
                f"stage: node {self.node_id} cannot run {wanted.value!r} after {done!r} "
                "(replayed or out-of-order SecAgg+ message)"
            )

    def _enter(self, stage: Stage, message: Mapping[str, Any]) -> None:
        if message.get("stage") != stage:
            raise ValueError(f"stage: expected a {stage!r} message, got {message.get('stage')!r}")
        self.expect(stage)

    def setup(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 1: check the parameters and create the two key pairs.

        Parameters
        ----------
        message : Mapping[str, Any]
            ``{"stage": "setup", "num_clients": int, "num_values": int, **params.to_dict()}``.

        Returns
        -------
        dict[str, Any]
            ``{"pk1": bytes, "pk2": bytes, "b_commitment": bytes}``: the encryption and the
            masking public key (raw 32-byte X25519), and the commitment to the mask seed
            (:func:`~.encoding.seed_commitment`) the server checks the rebuilt seed against.
        """
        self._enter(Stage.SETUP, message)
        sent = SecAggParams.from_dict(dict(message))
        if sent != self.params:
            raise ValueError(f"params: the server sent {sent}, this client holds {self.params}")
        num_clients = int(message["num_clients"])
        num_values = int(message["num_values"])
        if resolve_params(sent, num_clients, num_values) != sent:
            raise ValueError(f"params: not resolved for {num_clients} clients: {sent}")
        self.num_clients = num_clients
        self.num_values = num_values
        self._sk1, self._pk1 = generate_key_pair()
        self._sk2, self._pk2 = generate_key_pair()
        self.stage = Stage.SETUP
        return {"pk1": self._pk1, "pk2": self._pk2, "b_commitment": seed_commitment(self._seed)}

    def share_keys(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 2: Shamir-share ``b`` and ``sk2`` over the group; encrypt each member's pair.

        Parameters
        ----------
        message : Mapping[str, Any]
            ``{"stage": "share_keys", "node_ids": list[int], "pk1": list[bytes],
            "pk2": list[bytes]}``: the share group (sorted, this client included, those that
            dropped at setup left out) and its public keys, aligned.

        Returns
        -------
        dict[str, Any]
            ``{"destinations": list[int], "ciphertexts": list[bytes]}``: one ciphertext per
            other group member, encrypted with the key agreed from ``sk1`` and ``pk1_v``; a
            member whose ``pk1`` or ``pk2`` is unusable gets none (it is treated as dropped).
        """
        self._enter(Stage.SHARE_KEYS, message)
        group = [int(v) for v in message["node_ids"]]
        pk1s = [bytes(v) for v in message["pk1"]]
        pk2s = [bytes(v) for v in message["pk2"]]
        threshold = int(self.params.reconstruction_threshold)
        if not len(group) == len(pk1s) == len(pk2s):
            raise ValueError("share_keys: node_ids, pk1 and pk2 differ in length")
        if group != sorted(set(group)):
            raise ValueError("share_keys: node_ids must be sorted and distinct")
        if self.node_id not in group:
            raise ValueError(f"share_keys: node {self.node_id} is not in its own group")
        if not threshold <= len(group) <= int(self.params.num_shares):
            raise ValueError(
                f"share_keys: group of {len(group)} outside [reconstruction_threshold="
                f"{threshold}, num_shares={self.params.num_shares}]"
            )
        own = group.index(self.node_id)
        if pk1s[own] != self._pk1 or pk2s[own] != self._pk2:
            raise ValueError("share_keys: the server sent wrong public keys for this client")
        if len(set(pk1s + pk2s)) != 2 * len(group):
            raise ValueError("share_keys: public keys must all be distinct")

        b_shares = create_shares(self._seed, threshold, len(group))
        sk2_shares = create_shares(self._sk2, threshold, len(group))
        sk1, sk2 = load_private_key(self._sk1), load_private_key(self._sk2)
        destinations: list[int] = []
        ciphertexts: list[bytes] = []
        excluded: list[int] = []
        enc_keys: list[bytes] = []
        mask_seeds: list[bytes] = []
        for index, dst in enumerate(group):
            enc_key = mask_seed = None
            if dst != self.node_id:
                pk1, pk2 = load_peer_key(pk1s[index]), load_peer_key(pk2s[index])
                if pk1 is not None and pk2 is not None:
                    enc_key = agree(sk1, pk1, ENCRYPTION_PURPOSE)
                    mask_seed = agree(sk2, pk2, MASK_PURPOSE)
            enc_keys.append(enc_key or b"")
            mask_seeds.append(mask_seed or b"")
            if dst == self.node_id:
                self._b_shares[dst] = b_shares[index]
                self._sk2_shares[dst] = sk2_shares[index]
            elif enc_key is None or mask_seed is None:
                excluded.append(dst)  # unusable keys: as if it had dropped at setup
            else:
                plaintext = share_keys_plaintext_concat(
                    self.node_id, dst, b_shares[index], sk2_shares[index]
                )
                destinations.append(dst)
                ciphertexts.append(encrypt(enc_key, plaintext))
        self._group, self._group_pk1, self._group_pk2 = group, pk1s, pk2s
        self._excluded = excluded
        self._enc_keys, self._mask_seeds = enc_keys, mask_seeds
        self.stage = Stage.SHARE_KEYS
        return {"destinations": destinations, "ciphertexts": ciphertexts}

    def collect_masked_vectors(
        self,
        message: Mapping[str, Any],
        update: Sequence[NDArray[np.floating]],
        weight: float,
    ) -> dict[str, Any]:
        """Stage 3: store the shares sent to this client; mask and return its weighted update.

        The update is clipped to ``clipping_range``, scaled by the quantised weight, quantised
        (see :func:`~.encoding.encode_update`), then masked with ``PRG(b)`` plus, for every
        partner ``v`` (a source: a member this client and that sent each other ciphertexts),
        ``+PRG(s_uv)`` (``s_uv`` the seed agreed from ``sk2`` and ``pk2_v`` at share_keys) if
        this node id is the larger, ``-`` otherwise; all modulo ``modulus_range``. A
        ciphertext that does not decrypt, or names other nodes, leaves this client without that
        partner's shares (it answers ``b""`` for them at unmask); the pairwise mask stays,
        since the partner adds it too.

        Parameters
        ----------
        message : Mapping[str, Any]
            ``{"stage": "collect_masked_vectors", "sources": list[int],
            "ciphertexts": list[bytes]}``: the ciphertexts addressed to this client by the
            members it sent one to.
        update : Sequence[NDArray[np.floating]]
            The client's update (finite float arrays).
        weight : float
            Its weight, in ``[0, max_weight]``.

        Returns
        -------
        dict[str, Any]
            ``{"masked_vectors": list[NDArray[np.int64]]}``: the masked update arrays followed
            by two masked one-element arrays, the quantised weight and the clipped count.
        """
        self._enter(Stage.COLLECT_MASKED_VECTORS, message)
        sources = [int(v) for v in message["sources"]]
        ciphertexts = [bytes(v) for v in message["ciphertexts"]]
        threshold = int(self.params.reconstruction_threshold)
        if len(sources) != len(ciphertexts):
            raise ValueError("collect_masked_vectors: sources and ciphertexts differ in length")
        _check_distinct("collect_masked_vectors", sources)
        others = set(self._group) - {self.node_id}
        if not set(sources) <= others:
            raise ValueError(
                f"collect_masked_vectors: sources {sorted(set(sources) - others)} are not "
                f"neighbours of node {self.node_id}"
            )
        # Members left out at share_keys got no ciphertext from this client: not partners.
        received = [
            (src, ciphertext)
            for src, ciphertext in zip(sources, ciphertexts, strict=True)
            if src not in self._excluded
        ]
        if len(received) + 1 < threshold:
            raise ValueError(
                f"collect_masked_vectors: {len(received) + 1} live group members, below "
                f"reconstruction_threshold={threshold}"
            )
        num_values = sum(int(np.size(array)) for array in update)
        if num_values != self.num_values:
            raise ValueError(f"update: {num_values} values, the server expects {self.num_values}")

        partners: dict[int, bytes] = {}  # partner -> pairwise-mask seed
        for src, ciphertext in received:
            index = self._group.index(src)
            if not self._enc_keys[index] or not self._mask_seeds[index]:
                continue  # excluded at share_keys (filtered above); kept for safety
            partners[src] = self._mask_seeds[index]
            shares = self._open(self._enc_keys[index], src, ciphertext)
            if shares is not None:
                self._b_shares[src], self._sk2_shares[src] = shares

        encoded, _ = encode_update(update, weight, self.params)
        vectors = to_wire(encoded, self.params)  # 32-bit while modulus_range <= 2**32
        shapes = [vector.shape for vector in vectors]
        add_masks(vectors, masks(self._seed, self.params, shapes), 1, self.params)
        for partner in sorted(partners):
            seed = partners[partner]
            sign = 1 if self.node_id > partner else -1
            add_masks(vectors, masks(seed, self.params, shapes), sign, self.params)
        self._partners = sorted(partners)
        self.stage = Stage.COLLECT_MASKED_VECTORS
        return {"masked_vectors": vectors}

    def _open(self, key: bytes, src: int, ciphertext: bytes) -> tuple[bytes, bytes] | None:
        """The shares ``src`` sent in ``ciphertext`` (under ``key``), or ``None`` when it is
        unusable."""
        plaintext = decrypt(key, ciphertext)
        if plaintext is None:
            return None
        try:
            actual_src, dst, b_share, sk2_share = share_keys_plaintext_separate(plaintext)
        except (ValueError, TypeError, IndexError):
            return None
        if actual_src != src or dst != self.node_id:
            return None
        return b_share, sk2_share

    def unmask(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Stage 4: reveal ``b`` shares of surviving members and ``sk2`` shares of dropped ones.

        Refuses when a member is listed as both, when a listed member is not a partner (or this
        client), or when fewer than ``reconstruction_threshold`` members survived. Erases the
        client's secrets afterwards.

        Parameters
        ----------
        message : Mapping[str, Any]
            ``{"stage": "unmask", "survivors": list[int], "dropped": list[int]}``: group
            members whose masked vectors arrived (this client included) and partners whose
            did not.

        Returns
        -------
        dict[str, Any]
            ``{"survivor_ids": list[int], "b_shares": list[bytes], "dropped_ids": list[int],
            "sk2_shares": list[bytes]}``, shares aligned with the ids; ``b""`` for a partner
            whose ciphertext did not open (this client holds none of its shares).
        """
        self._enter(Stage.UNMASK, message)
        survivors = [int(v) for v in message["survivors"]]
        dropped = [int(v) for v in message["dropped"]]
        threshold = int(self.params.reconstruction_threshold)
        _check_distinct("unmask", survivors + dropped)
        if self.node_id not in survivors:
            raise ValueError(f"unmask: node {self.node_id} is missing from the survivors")
        known = set(self._partners) | {self.node_id}
        unknown = sorted(set(survivors + dropped) - known)
        if unknown:
            raise ValueError(f"unmask: node {self.node_id} holds no shares of nodes {unknown}")
        if len(survivors) < threshold:
            raise ValueError(
                f"unmask: {len(survivors)} survivors, below reconstruction_threshold={threshold}"
            )
        reply = {
            "survivor_ids": survivors,
            "b_shares": [self._b_shares.get(v, b"") for v in survivors],
            "dropped_ids": dropped,
            "sk2_shares": [self._sk2_shares.get(v, b"") for v in dropped],
        }
        self._erase_secrets()
        self.stage = Stage.UNMASK
        return reply

    def _erase_secrets(self) -> None:
        self._seed = b"\x00" * len(self._seed)
        self._sk1 = self._sk2 = b""
        self._enc_keys = []
        self._mask_seeds = []
        self._b_shares = {}
        self._sk2_shares = {}
