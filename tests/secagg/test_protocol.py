"""SecAgg+ protocol core: correctness under dropouts, failures, privacy, clipping, state."""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import pytest
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

SHAPES = [(3, 4), (5,), ()]
PARAMS = SecAggParams(
    num_shares=7,
    reconstruction_threshold=4,
    clipping_range=3.0,
    quantization_range=2**16,
    modulus_range=2**32,
    max_weight=100.0,
)


class Run:
    """One simulated round: clients rebuilt from a ConfigRecord-held state at every stage."""

    def __init__(
        self,
        num_clients: int = 10,
        params: SecAggParams = PARAMS,
        shapes: list[tuple[int, ...]] = SHAPES,
        drops: Mapping[Stage, int | set[int]] | None = None,
        seed: int = 0,
        scale: float = 1.5,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.ids = sorted(int(v) for v in rng.choice(2**40, num_clients, replace=False))
        self.updates = {nid: [rng.normal(0.0, scale, s) for s in shapes] for nid in self.ids}
        self.weights = {nid: float(rng.uniform(1.0, params.max_weight)) for nid in self.ids}
        self.server = SecAggServer(params, self.ids, shapes, rng=random.Random(seed))
        self.states: dict[int, dict] = {}
        self.replies: dict[Stage, dict[int, dict]] = {}
        self.failure: SecAggFailure | None = None
        pick = random.Random(seed + 1)
        for stage in Stage:
            messages = self.server.messages()
            dropped = (drops or {}).get(stage, 0)
            if isinstance(dropped, int):
                dropped = set(pick.sample(sorted(messages), dropped))
            replies = {}
            for nid, message in messages.items():
                reply = self._client_step(stage, nid, message)
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
    client.unmask(message)
    after = client.state_dict()
    assert after["sk1"] == after["sk2"] == b"" and after["b_shares"] == []


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
    assert resolve_params(SecAggParams(**{**base, "num_shares": 1.0}), 10).num_shares == 10
    assert resolve_params(SecAggParams(**{**base, "num_shares": 50}), 10).num_shares == 10
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
