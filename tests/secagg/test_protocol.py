"""SecAgg+ protocol core: correctness under dropouts, failures, privacy, clipping, state."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.app import ArrayRecord, ConfigRecord

from fedrobust.secagg import (
    SecAggClient,
    SecAggFailure,
    SecAggParams,
    SecAggResult,
    SecAggServer,
    Stage,
    decode_sum,
    encode_update,
    error_bounds,
    resolve_params,
    share_groups,
)
from fedrobust.secagg.encoding import masks, prg, seed_commitment
from fedrobust.secagg.shamir import HEADER_BYTES

SHAPES = [(3, 4), (5,), ()]
PARAMS = SecAggParams(
    num_shares=7,
    reconstruction_threshold=4,
    clipping_range=3.0,
    quantization_range=2**16,
    modulus_range=2**32,
    max_weight=100.0,
)


Tamper = Callable[[Stage, int, dict], dict]


class Run:
    """One simulated round: clients rebuilt from a ConfigRecord-held state at every stage.

    ``tamper_message`` / ``tamper_reply`` (stage, node id, dict) -> dict change what a client
    receives / sends. A client whose stage raises ``ValueError`` sends no reply (as the
    ClientApp's error reply drops it); ``errors`` keeps what it raised.
    """

    def __init__(
        self,
        num_clients: int = 10,
        params: SecAggParams = PARAMS,
        shapes: list[tuple[int, ...]] = SHAPES,
        drops: Mapping[Stage, int | set[int]] | None = None,
        seed: int = 0,
        scale: float = 1.5,
        tamper_message: Tamper | None = None,
        tamper_reply: Tamper | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.ids = sorted(int(v) for v in rng.choice(2**40, num_clients, replace=False))
        self.updates = {nid: [rng.normal(0.0, scale, s) for s in shapes] for nid in self.ids}
        self.weights = {nid: float(rng.uniform(1.0, params.max_weight)) for nid in self.ids}
        self.server = SecAggServer(params, self.ids, shapes, rng=random.Random(seed))
        self.states: dict[int, dict] = {}
        self.replies: dict[Stage, dict[int, dict]] = {}
        self.failure: SecAggFailure | None = None
        self.errors: dict[int, str] = {}
        pick = random.Random(seed + 1)
        for stage in Stage:
            messages = self.server.messages()
            dropped = (drops or {}).get(stage, 0)
            if isinstance(dropped, int):
                dropped = set(pick.sample(sorted(messages), dropped))
            replies = {}
            for nid, message in messages.items():
                if tamper_message is not None:
                    message = tamper_message(stage, nid, message)
                try:
                    reply = self._client_step(stage, nid, message)
                except ValueError as error:
                    self.errors[nid] = f"{stage}: {error}"
                    continue
                if tamper_reply is not None:
                    reply = tamper_reply(stage, nid, reply)
                if nid not in dropped:
                    replies[nid] = reply
            self.replies[stage] = replies
            self.failure = self.server.receive(replies)
            if self.failure is not None:
                return

    def _client_step(self, stage: Stage, nid: int, message: dict) -> dict:
        if stage == Stage.SETUP:
            client = SecAggClient(nid, SecAggParams.from_dict(message))
        else:
            client = SecAggClient.from_state_dict(dict(ConfigRecord(self.states[nid])))
        if stage == Stage.COLLECT_MASKED_VECTORS:
            reply = client.collect_masked_vectors(message, self.updates[nid], self.weights[nid])
        else:
            reply = getattr(client, stage.value)(message)
        self.states[nid] = client.state_dict()
        return reply

    def reference(self, nodes: list[int], params: SecAggParams = PARAMS) -> tuple[list, float]:
        c = params.clipping_range
        total = sum(self.weights[nid] for nid in nodes)
        weighted_sum = [
            sum(self.weights[nid] * np.clip(self.updates[nid][k], -c, c) for nid in nodes)
            for k in range(len(self.updates[nodes[0]]))
        ]
        return weighted_sum, total


def max_abs_diff(left: list[np.ndarray], right: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(a - b))) for a, b in zip(left, right, strict=True))


# --------------------------------------------------------------------- correctness


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("stage", list(Stage))
def test_aggregate_is_weighted_mean_of_survivors(stage: Stage, fraction: float) -> None:
    run = Run(drops={stage: round(fraction * 10)})
    assert run.failure is None
    result = run.server.aggregate()
    assert isinstance(result, SecAggResult)

    contributors = run.server.survivors[Stage.COLLECT_MASKED_VECTORS]
    expected_dropped = round(fraction * 10)
    assert run.server.dropouts[stage] == expected_dropped
    if stage != Stage.UNMASK:
        assert len(contributors) == 10 - expected_dropped
    else:  # dropping at unmask still leaves the masked vector in the sum
        assert len(contributors) == 10
    assert result.num_contributors == len(contributors)

    weighted_sum, total_weight = run.reference(contributors)
    assert abs(result.total_weight - total_weight) <= result.bounds.total_weight
    assert max_abs_diff(result.weighted_sum, weighted_sum) <= result.bounds.weighted_sum
    mean = run.server.weighted_mean()
    reference_mean = [array / total_weight for array in weighted_sum]
    assert max_abs_diff(mean, reference_mean) <= result.bounds.weighted_mean
    assert [a.shape for a in mean] == SHAPES


def test_thirty_clients_on_a_sparse_graph() -> None:
    params = SecAggParams(num_shares=9, reconstruction_threshold=5, clipping_range=3.0)
    run = Run(num_clients=30, params=params, drops={Stage.COLLECT_MASKED_VECTORS: 3}, seed=3)
    assert run.failure is None
    assert all(len(group) == 9 for group in run.server.groups.values())
    result = run.server.aggregate()
    assert isinstance(result, SecAggResult)
    contributors = run.server.survivors[Stage.COLLECT_MASKED_VECTORS]
    assert len(contributors) == 27
    weighted_sum, total_weight = run.reference(contributors, params)
    mean = result.weighted_mean()
    assert max_abs_diff(mean, [a / total_weight for a in weighted_sum]) <= (
        result.bounds.weighted_mean
    )


def test_dropouts_at_every_stage_at_once() -> None:
    drops = {Stage.SETUP: 1, Stage.SHARE_KEYS: 1, Stage.COLLECT_MASKED_VECTORS: 1}
    run = Run(num_clients=12, drops=drops | {Stage.UNMASK: 1}, seed=5)
    assert run.failure is None
    assert run.server.dropouts == {stage: 1 for stage in Stage}
    result = run.server.aggregate()
    assert isinstance(result, SecAggResult)
    contributors = run.server.survivors[Stage.COLLECT_MASKED_VECTORS]
    assert len(contributors) == 9
    weighted_sum, _ = run.reference(contributors)
    assert max_abs_diff(result.weighted_sum, weighted_sum) <= result.bounds.weighted_sum


def test_quantisation_error_bound_on_sums_of_encodings() -> None:
    """Encode and decode without masks, coarse quantisation, extreme values: within the bound."""
    params = resolve_params(
        SecAggParams(7, 4, clipping_range=1.0, quantization_range=2**8, max_weight=10.0), 50
    )
    rng = np.random.default_rng(1)
    updates = [[rng.choice([-1.0, 1.0, 0.3], size=(40,)) * 2.0] for _ in range(50)]
    weights = rng.uniform(0.0, 10.0, size=50)
    total = [np.zeros(40, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64)]
    for update, weight in zip(updates, weights, strict=True):
        encoded, _ = encode_update(update, float(weight), params)
        total = [a + b for a, b in zip(total, encoded, strict=True)]
    weighted_sum, total_weight, clipped = decode_sum(total, params, 50)
    bounds = error_bounds(params, 50, total_weight)
    exact = sum(w * np.clip(u[0], -1.0, 1.0) for u, w in zip(updates, weights, strict=True))
    assert abs(total_weight - weights.sum()) <= bounds.total_weight
    assert np.max(np.abs(weighted_sum[0] - exact)) <= bounds.weighted_sum
    mean_error = np.max(np.abs(weighted_sum[0] / total_weight - exact / weights.sum()))
    assert mean_error <= bounds.weighted_mean
    assert clipped == sum(int(np.count_nonzero(np.abs(u[0]) > 1.0)) for u in updates)


# ------------------------------------------------------------------------ failures


@pytest.mark.parametrize("stage", list(Stage))
def test_below_threshold_fails_with_stage_and_counts(stage: Stage) -> None:
    run = Run(drops={stage: 7})  # 3 of 10 left, threshold 4
    failure = run.failure
    assert isinstance(failure, SecAggFailure)
    assert failure.stage == stage
    assert stage.value in failure.reason
    assert "3 of 10" in failure.reason
    assert "reconstruction_threshold=4" in failure.reason
    assert run.server.aggregate() == failure
    assert run.server.weighted_mean() == failure
    if stage != Stage.UNMASK:
        with pytest.raises(RuntimeError, match="failed"):
            run.server.messages()


def test_share_group_losing_too_many_members_fails() -> None:
    params = SecAggParams(num_shares=5, reconstruction_threshold=4)
    probe = Run(params=params, drops={})
    victim = probe.ids[0]
    neighbours = [v for v in probe.server.groups[victim] if v != victim][:2]
    run = Run(params=params, drops={Stage.COLLECT_MASKED_VECTORS: set(neighbours)})
    assert isinstance(run.failure, SecAggFailure)
    assert run.failure.stage == Stage.COLLECT_MASKED_VECTORS
    assert "share group has 3 live members of 5" in run.failure.reason


def test_too_few_shares_at_unmask_fails() -> None:
    params = SecAggParams(num_shares=5, reconstruction_threshold=4)
    probe = Run(params=params, drops={})
    victim = probe.ids[0]
    neighbours = [v for v in probe.server.groups[victim] if v != victim][:2]
    run = Run(params=params, drops={Stage.UNMASK: set(neighbours)})
    assert isinstance(run.failure, SecAggFailure)
    assert run.failure.stage == Stage.UNMASK
    assert "3 shares of node" in run.failure.reason
    assert isinstance(run.server.aggregate(), SecAggFailure)


# ------------------------------------------------------------------------- privacy


def _arrays_in(value: object, seen: set[int] | None = None) -> list[np.ndarray]:
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, list | tuple | set):
        items = list(value)
    elif hasattr(value, "__dict__"):
        items = list(vars(value).values())
    else:
        return []
    return [array for item in items for array in _arrays_in(item, seen)]


def test_masked_vector_reveals_nothing_and_server_holds_no_update() -> None:
    run = Run(shapes=[(2000,)], drops={})
    nid = run.ids[0]
    masked = run.replies[Stage.COLLECT_MASKED_VECTORS][nid]["masked_vectors"]
    plain, _ = encode_update(run.updates[nid], run.weights[nid], resolve_params(PARAMS, 10, 2000))
    # Stochastic rounding may move a plain value by one step; masks are uniform mod 2**32.
    close = np.abs(masked[0] - plain[0]) <= 1
    assert close.mean() < 0.01
    assert np.abs(masked[0] - plain[0]).mean() > 2**28
    assert masked[1][0] != plain[1][0]  # the weight is masked too

    # Before aggregation the server holds one array set: the running masked sum.
    held = _arrays_in(run.server)
    assert all(np.issubdtype(array.dtype, np.integer) for array in held)
    assert len(held) == 1 + 2  # the update array, plus weight and clip count
    replies = run.replies[Stage.COLLECT_MASKED_VECTORS].values()
    individual = [reply["masked_vectors"][0] for reply in replies]
    assert not any(np.array_equal(held[0], vector) for vector in individual)


def test_unmask_refuses_to_reveal_both_secrets_of_a_member() -> None:
    run = Run(drops={})
    nid = run.server.survivors[Stage.COLLECT_MASKED_VECTORS][0]
    client = SecAggClient.from_state_dict(run.states[nid])
    assert client.stage == Stage.UNMASK
    with pytest.raises(ValueError, match="stage"):
        client.unmask({"stage": "unmask", "survivors": [nid], "dropped": []})

    # A client just before unmask, asked for b and sk2 of the same neighbour.
    run = _run_until_unmask()
    nid, message = next(iter(run.pending.items()))
    client = SecAggClient.from_state_dict(run.states[nid])
    neighbour = next(v for v in message["survivors"] if v != nid)
    bad = {"stage": "unmask", "survivors": message["survivors"], "dropped": [neighbour]}
    with pytest.raises(ValueError, match="distinct"):
        client.unmask(bad)
    too_few = {"stage": "unmask", "survivors": [nid, neighbour], "dropped": []}
    with pytest.raises(ValueError, match="below reconstruction_threshold"):
        client.unmask(too_few)


class _PausedRun(Run):
    """A run whose unmask messages are produced but not delivered."""

    pending: dict[int, dict]


def _run_until_unmask() -> _PausedRun:
    run = _PausedRun.__new__(_PausedRun)
    rng = np.random.default_rng(0)
    run.ids = list(range(1, 11))
    run.updates = {nid: [rng.normal(size=(4,))] for nid in run.ids}
    run.weights = dict.fromkeys(run.ids, 1.0)
    run.server = SecAggServer(PARAMS, run.ids, [(4,)], rng=random.Random(0))
    run.states = {}
    for stage in list(Stage)[:3]:
        messages = run.server.messages()
        replies = {nid: run._client_step(stage, nid, msg) for nid, msg in messages.items()}
        assert run.server.receive(replies) is None
    run.pending = run.server.messages()
    return run


# ------------------------------------------------------------------------ clipping


def test_clipping_is_applied_and_counted() -> None:
    run = Run(drops={Stage.COLLECT_MASKED_VECTORS: 2}, scale=3.0)
    result = run.server.aggregate()
    assert isinstance(result, SecAggResult)
    contributors = run.server.survivors[Stage.COLLECT_MASKED_VECTORS]
    expected = sum(
        int(np.count_nonzero(np.abs(array) > PARAMS.clipping_range))
        for nid in contributors
        for array in run.updates[nid]
    )
    assert expected > 0
    assert result.clipped == expected == run.server.clipped
    weighted_sum, _ = run.reference(contributors)  # the reference clips too
    assert max_abs_diff(result.weighted_sum, weighted_sum) <= result.bounds.weighted_sum


def test_encode_update_clips_and_counts() -> None:
    params = resolve_params(PARAMS, 10)
    update = [np.array([-10.0, -3.0, 0.0, 2.9, 3.5, 100.0])]
    encoded, clipped = encode_update(update, params.max_weight, params)
    assert clipped == 3
    assert encoded[-1].tolist() == [3]
    assert encoded[-2].tolist() == [params.quantization_range]
    assert encoded[0][0] == 0 and encoded[0][-1] == params.quantization_range
    with pytest.raises(ValueError, match="weight"):
        encode_update(update, params.max_weight * 1.01, params)
    with pytest.raises(ValueError, match="update"):
        encode_update([np.array([np.nan])], 1.0, params)


# --------------------------------------------------------------------------- state


def test_state_and_messages_fit_flower_records() -> None:
    run = Run(drops={})
    for nid, state in run.states.items():
        record = ConfigRecord(state)
        rebuilt = SecAggClient.from_state_dict(dict(record))
        assert rebuilt.state_dict() == state
        assert rebuilt.node_id == nid
    for stage, replies in run.replies.items():
        for reply in replies.values():
            if stage == Stage.COLLECT_MASKED_VECTORS:
                ArrayRecord(reply["masked_vectors"])
            else:
                ConfigRecord(reply)
    run = _run_until_unmask()
    for message in run.pending.values():
        ConfigRecord(message)


def test_state_round_trip_mid_round_and_stage_order() -> None:
    run = _run_until_unmask()
    nid, message = next(iter(run.pending.items()))
    state = run.states[nid]
    # Rebuilding twice from the same state gives the same reply.
    first = SecAggClient.from_state_dict(state).unmask(message)
    second = SecAggClient.from_state_dict(dict(ConfigRecord(state))).unmask(message)
    assert first == second
    client = SecAggClient.from_state_dict(state)
    with pytest.raises(ValueError, match="stage"):
        client.share_keys({"stage": "share_keys", "node_ids": [], "pk1": [], "pk2": []})
    assert len(state["mask_seeds"]) == len(state["group"]) == len(state["enc_keys"])
    client.unmask(message)
    after = client.state_dict()
    assert after["sk1"] == after["sk2"] == b"" and after["b_shares"] == []
    assert after["enc_keys"] == after["mask_seeds"] == []


def test_each_key_agreement_runs_once_per_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """share_keys agrees the encryption key and the mask seed once per neighbour; the later
    stages reuse them from the state."""
    import fedrobust.secagg.client as client_module

    calls: dict[int, int] = {}
    agree = client_module.agree

    def counting_agree(*args: object) -> bytes | None:
        calls[0] = calls.get(0, 0) + 1
        return agree(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(client_module, "agree", counting_agree)
    run = Run(drops={})
    _check_aggregate(run, 10)
    neighbours = int(resolve_params(PARAMS, 10).num_shares) - 1
    assert calls[0] == 10 * 2 * neighbours


# -------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    ("changes", "num_clients", "field"),
    [
        ({"num_shares": 4}, 10, "num_shares"),
        ({"num_shares": 2}, 10, "num_shares"),
        ({"num_shares": 1.5}, 10, "num_shares"),
        ({"num_shares": 7}, 2, "num_shares"),
        ({"reconstruction_threshold": 1}, 10, "reconstruction_threshold"),
        ({"reconstruction_threshold": 8}, 10, "reconstruction_threshold"),
        ({"reconstruction_threshold": 0.0}, 10, "reconstruction_threshold"),
        ({"clipping_range": 0.0}, 10, "clipping_range"),
        ({"clipping_range": float("inf")}, 10, "clipping_range"),
        ({"quantization_range": 2**31}, 10, "quantization_range"),
        ({"quantization_range": 1.5}, 10, "quantization_range"),
        ({"modulus_range": 3 * 2**30}, 10, "modulus_range"),
        ({"modulus_range": 2**63}, 10, "modulus_range"),
        ({"modulus_range": 2**19}, 10, "modulus_range"),
        ({"max_weight": -1.0}, 10, "max_weight"),
    ],
)
def test_invalid_params_name_the_field(changes: dict, num_clients: int, field: str) -> None:
    params = SecAggParams(**{**PARAMS.to_dict(), **changes})
    with pytest.raises(ValueError, match=f"^{field}:"):
        resolve_params(params, num_clients)


def test_params_resolution() -> None:
    base = PARAMS.to_dict()
    assert resolve_params(SecAggParams(**{**base, "num_shares": 0.5}), 10).num_shares == 5
    assert resolve_params(SecAggParams(**{**base, "num_shares": 0.4}), 10).num_shares == 5
    low = {**base, "allow_low_threshold": True}  # 4 of 10 shares: below half
    assert resolve_params(SecAggParams(**{**low, "num_shares": 1.0}), 10).num_shares == 10
    assert resolve_params(SecAggParams(**{**low, "num_shares": 50}), 10).num_shares == 10
    even_all = SecAggParams(**{**base, "num_shares": 4, "reconstruction_threshold": 3})
    assert resolve_params(even_all, 4).num_shares == 4
    fraction = SecAggParams(**{**base, "num_shares": 5, "reconstruction_threshold": 0.5})
    assert resolve_params(fraction, 10).reconstruction_threshold == 3
    resolved = resolve_params(PARAMS, 10)
    assert resolve_params(resolved, 10) == resolved
    # The masked clip count must not wrap either.
    with pytest.raises(ValueError, match="^modulus_range:"):
        small = SecAggParams(**{**base, "modulus_range": 2**20})
        SecAggServer(small, list(range(10)), [(2 * 10**5,)])


def test_share_groups_are_symmetric_rings() -> None:
    ids = list(range(100, 121))
    groups = share_groups(ids, 7, random.Random(0))
    for nid, group in groups.items():
        assert len(group) == 7 and nid in group and group == sorted(group)
        assert all(nid in groups[other] for other in group)
    assert share_groups(ids, 21) == {nid: ids for nid in ids}
    with pytest.raises(ValueError, match="num_shares"):
        share_groups(ids, 6)


# ----------------------------------------------------------------------- integrity


def _check_aggregate(run: Run, expected_contributors: int) -> None:
    """The round succeeded over ``expected_contributors`` clients and matches the reference."""
    assert run.failure is None
    result = run.server.aggregate()
    assert isinstance(result, SecAggResult), result
    contributors = run.server.survivors[Stage.COLLECT_MASKED_VECTORS]
    assert len(contributors) == expected_contributors
    weighted_sum, total_weight = run.reference(contributors)
    assert abs(result.total_weight - total_weight) <= result.bounds.total_weight
    assert max_abs_diff(result.weighted_sum, weighted_sum) <= result.bounds.weighted_sum


def test_prg_uses_all_32_seed_bytes() -> None:
    seed = bytes(range(32))
    base = prg(seed, 64, 2**32)
    for position in range(32):  # the last byte included: no 32-bit folding
        other = bytearray(seed)
        other[position] ^= 1
        assert not np.array_equal(prg(bytes(other), 64, 2**32), base), position
    last = seed[:-1] + bytes([seed[-1] ^ 0x80])
    assert not np.array_equal(prg(last, 64, 2**32), base)
    params = resolve_params(PARAMS, 10)
    shaped = masks(seed, params, [(3, 4), (5,)])
    assert np.array_equal(np.concatenate([m.ravel() for m in shaped]), prg(seed, 17, 2**32))
    wide = prg(seed, 100_000, 2**40)
    assert wide.min() >= 0 and wide.max() < 2**40
    assert abs(float(wide.mean()) / 2**40 - 0.5) < 0.01  # uniform over the modulus
    assert prg(seed, 8, 2**62).max() < 2**62


@pytest.mark.parametrize(
    ("index", "delta", "reason"),
    [
        (0, 2**20, "left its clipping range"),  # shifts one coordinate of the sum
        (0, -(2**20), "left its clipping range"),
        (-2, 11 * PARAMS.quantization_range, "quantised weight"),
        (-1, 10**6, "clip count"),
    ],
)
def test_a_contribution_out_of_range_fails_the_round(index: int, delta: int, reason: str) -> None:
    attacker: list[int] = []

    def shift(stage: Stage, nid: int, reply: dict) -> dict:
        if stage == Stage.COLLECT_MASKED_VECTORS and not attacker:
            attacker.append(nid)
            vectors = [v.copy() for v in reply["masked_vectors"]]
            flat = vectors[index].reshape(-1)
            flat[0] = (int(flat[0]) + delta) % PARAMS.modulus_range
            return {"masked_vectors": vectors}
        return reply

    run = Run(tamper_reply=shift)
    assert run.failure is None  # every stage went through: the sum is what is wrong
    result = run.server.aggregate()
    assert isinstance(result, SecAggFailure)
    assert result.stage == "aggregate"
    assert "range check" in result.reason and reason in result.reason
    assert isinstance(run.server.weighted_mean(), SecAggFailure)


def _corrupt(share: bytes) -> bytes:
    """Replace the share's first value by another field element derived from the share (the
    header with its x-coordinate stays). Flipping the same bits in every holder's share
    could cancel out in the Lagrange sum, rebuilding the true secret by chance."""
    other = b"\x00" + hashlib.sha512(share).digest() + hashlib.sha512(share[::-1]).digest()[:1]
    return share[:HEADER_BYTES] + other + share[HEADER_BYTES + len(other) :]


def _not_x25519_keys() -> list[bytes]:
    """Public keys a client might send that are not X25519 keys: a P-256 key (PEM, and as
    its raw compressed point), 31 bytes, and a small-order point."""
    p256 = ec.derive_private_key(2026, ec.SECP256R1()).public_key()  # fixed: stable test ids
    pem = p256.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    compressed = p256.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return [pem, compressed, bytes(31), (1).to_bytes(32, "little")]


def test_a_corrupted_mask_seed_share_is_retried() -> None:
    holder: list[int] = []

    def corrupt(stage: Stage, nid: int, reply: dict) -> dict:
        # The smallest id's shares come first in every pool: the first subset fails.
        if stage == Stage.UNMASK and (not holder or holder[0] == nid):
            holder.append(nid)
            return {**reply, "b_shares": [_corrupt(s) for s in reply["b_shares"]]}
        return reply

    run = Run(tamper_reply=corrupt)
    assert holder == [min(run.ids)]
    _check_aggregate(run, 10)


def test_every_masking_key_share_corrupted_fails_with_a_reason() -> None:
    corrupted: list[int] = []

    def corrupt(stage: Stage, nid: int, reply: dict) -> dict:
        if stage == Stage.UNMASK and reply["dropped_ids"]:
            corrupted.append(nid)
            return {**reply, "sk2_shares": [_corrupt(s) for s in reply["sk2_shares"]]}
        return reply

    run = Run(drops={Stage.COLLECT_MASKED_VECTORS: 1}, tamper_reply=corrupt)
    assert len(corrupted) == 6  # the dropped client's partners that contributed
    assert run.failure is None
    result = run.server.aggregate()
    assert isinstance(result, SecAggFailure)
    assert "masking key sk2" in result.reason and "matching its pk2" in result.reason


def test_a_corrupted_masking_key_share_from_one_holder_is_retried() -> None:
    holder: list[int] = []

    def corrupt(stage: Stage, nid: int, reply: dict) -> dict:
        if stage == Stage.UNMASK and reply["dropped_ids"] and (not holder or holder[0] == nid):
            holder.append(nid)
            return {**reply, "sk2_shares": [_corrupt(s) for s in reply["sk2_shares"]]}
        return reply

    run = Run(drops={Stage.COLLECT_MASKED_VECTORS: 1}, tamper_reply=corrupt)
    assert len(holder) == 1
    _check_aggregate(run, 9)


def test_too_many_corrupted_shares_fail_with_a_reason() -> None:
    owner_holders: dict[str, object] = {}

    def corrupt(stage: Stage, nid: int, reply: dict) -> dict:
        if stage != Stage.UNMASK:
            return reply
        owner = owner_holders.setdefault("owner", reply["survivor_ids"][0])
        bad = owner_holders.setdefault("bad", set())
        assert isinstance(bad, set)
        # 4 of the owner's 7 holders lie: every subset of 4 shares holds a bad one.
        if owner in reply["survivor_ids"] and (nid in bad or len(bad) < 4):
            bad.add(nid)
            position = reply["survivor_ids"].index(owner)
            shares = list(reply["b_shares"])
            shares[position] = _corrupt(shares[position])
            return {**reply, "b_shares": shares}
        return reply

    run = Run(tamper_reply=corrupt)
    assert run.failure is None
    result = run.server.aggregate()
    assert isinstance(result, SecAggFailure)
    assert f"node {owner_holders['owner']}'s mask seed b" in result.reason
    assert "committed to" in result.reason


@pytest.mark.parametrize(
    "bad_key", _not_x25519_keys(), ids=["p256_pem", "p256_point", "31_bytes", "small_order"]
)
def test_a_public_key_that_is_not_x25519_is_rejected_at_setup(bad_key: bytes) -> None:
    victim: list[int] = []

    def send_bad_key(stage: Stage, nid: int, reply: dict) -> dict:
        if stage == Stage.SETUP and not victim:
            victim.append(nid)
            return {**reply, "pk1": bad_key}
        return reply

    run = Run(tamper_reply=send_bad_key)
    assert run.errors == {}
    assert "not 32-byte X25519" in run.server.rejected[Stage.SETUP][victim[0]]
    _check_aggregate(run, 9)


def test_a_garbage_public_key_from_one_neighbour_leaves_the_others_able_to_finish() -> None:
    """The server relays a neighbour's unusable keys: its neighbours leave it out."""
    not_x25519, low_order = _not_x25519_keys()[0], (0).to_bytes(32, "little")
    victim: list[int] = []

    def garble(stage: Stage, nid: int, message: dict) -> dict:
        if stage != Stage.SHARE_KEYS:
            return message
        if not victim:
            victim.append(message["node_ids"][0])
        if nid == victim[0] or victim[0] not in message["node_ids"]:
            return message
        position = message["node_ids"].index(victim[0])
        pk1, pk2 = list(message["pk1"]), list(message["pk2"])
        pk1[position], pk2[position] = not_x25519, low_order
        return {**message, "pk1": pk1, "pk2": pk2}

    run = Run(tamper_message=garble)
    assert run.errors == {}  # nobody raised, the honest neighbours included
    assert victim[0] in run.server.rejected[Stage.SHARE_KEYS]
    _check_aggregate(run, 9)


def test_a_garbage_ciphertext_costs_its_shares_not_the_round() -> None:
    sent: list[tuple[int, int]] = []

    def garble(stage: Stage, nid: int, reply: dict) -> dict:
        if stage == Stage.SHARE_KEYS and not sent:
            sent.append((nid, reply["destinations"][0]))
            return {**reply, "ciphertexts": [b"garbage", *reply["ciphertexts"][1:]]}
        return reply

    run = Run(tamper_reply=garble)
    assert run.errors == {}
    ((src, dst),) = sent
    unmask_reply = run.replies[Stage.UNMASK][dst]
    assert unmask_reply["b_shares"][unmask_reply["survivor_ids"].index(src)] == b""
    _check_aggregate(run, 10)


@pytest.mark.parametrize(
    ("num_shares", "threshold"), [(7, 3), (7, 2), (10, 5), (10, 0.5), (7, 0.4)]
)
def test_a_threshold_of_half_the_group_or_less_is_refused(
    num_shares: int, threshold: int | float
) -> None:
    params = SecAggParams(**{**PARAMS.to_dict(), "num_shares": num_shares,
                             "reconstruction_threshold": threshold})  # fmt: skip
    with pytest.raises(ValueError, match="^reconstruction_threshold:.*allow_low_threshold"):
        resolve_params(params, 10)
    allowed = SecAggParams(**{**params.to_dict(), "allow_low_threshold": True})
    resolved = resolve_params(allowed, 10)
    assert 2 * int(resolved.reconstruction_threshold) <= int(resolved.num_shares)


def test_a_replayed_stage_raises_before_training() -> None:
    run = _run_until_unmask()
    nid = next(iter(run.pending))
    client = SecAggClient.from_state_dict(run.states[nid])  # collect_masked_vectors done
    trained: list[int] = []

    def client_app_collect(message: dict) -> dict:
        """What the ClientApp's collect_masked_vectors branch does: check, then train."""
        client.expect(message["stage"])
        trained.append(nid)  # local_round: costs training and privacy budget
        return client.collect_masked_vectors(message, run.updates[nid], 1.0)

    replay = {"stage": "collect_masked_vectors", "sources": [], "ciphertexts": []}
    with pytest.raises(ValueError, match="^stage: .*replayed or out-of-order"):
        client_app_collect(replay)
    assert trained == []
    with pytest.raises(ValueError, match="^stage:"):
        client.expect(Stage.SHARE_KEYS)
    with pytest.raises(ValueError, match="unknown"):
        client.expect("train")
    client.expect(Stage.UNMASK)  # the next stage is fine
    fresh = SecAggClient(nid, resolve_params(PARAMS, 10))
    with pytest.raises(ValueError, match="^stage:"):  # collect before setup/share_keys
        fresh.expect("collect_masked_vectors")
    fresh.expect("setup")


def test_the_seed_commitment_hides_and_binds_the_seed() -> None:
    seed = bytes(range(32))
    assert seed_commitment(seed) != seed_commitment(seed[:-1] + b"\x00")
    assert seed_commitment(seed) != hashlib.sha256(seed).digest()  # domain-separated
    run = Run(drops={})
    setup = run.replies[Stage.SETUP]
    assert all(len(reply["b_commitment"]) == 32 for reply in setup.values())


def test_the_default_modulus_is_the_smallest_that_fits_and_travels_in_32_bits() -> None:
    auto = SecAggParams(num_shares=5, reconstruction_threshold=3, quantization_range=2**22)
    assert resolve_params(auto, 10, 1000).modulus_range == 2**32
    assert resolve_params(auto, 2000, 1000).modulus_range == 2**33  # 2000 * 2^22 > 2^32
    assert resolve_params(auto, 10, 2**30).modulus_range == 2**34  # values outnumber steps
    run = Run(num_clients=6, params=replace(PARAMS, modulus_range=None))
    masked = run.replies[Stage.COLLECT_MASKED_VECTORS]
    assert all(v.dtype == np.uint32 for reply in masked.values() for v in reply["masked_vectors"])
    _check_aggregate(run, 6)
    wide = Run(num_clients=6, params=replace(PARAMS, modulus_range=2**40))
    vectors = next(iter(wide.replies[Stage.COLLECT_MASKED_VECTORS].values()))["masked_vectors"]
    assert vectors[0].dtype == np.uint64
    _check_aggregate(wide, 6)


def test_stochastic_quantisation_is_unbiased() -> None:
    params = resolve_params(
        SecAggParams(3, 2, clipping_range=1.0, quantization_range=2**8, max_weight=1.0), 3
    )
    encoded, _ = encode_update([np.full(200_000, 0.3)], 1.0, params)
    exact = (0.3 + 1.0) * 2**8 / 2  # 166.4: rounded to 166 or 167
    assert set(np.unique(encoded[0]).tolist()) == {166, 167}
    assert abs(float(encoded[0].mean()) - exact) < 0.01
