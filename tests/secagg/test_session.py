"""A client's SecAgg+ instances between messages: fresh per round, erased when over."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import RecordDict

from fedrobust.secagg import SecAggParams, SecAggServer, Stage
from fedrobust.secagg.session import STATE_PREFIX, TRAINED_KEY, ClientSessions

PARAMS = SecAggParams(num_shares=3, reconstruction_threshold=2, max_weight=10.0)
NODES = [11, 12, 13]


def setup_round(states: dict[int, RecordDict], rnd: int) -> SecAggServer:
    """Run setup and share_keys of round ``rnd`` for every node; return the server."""
    server = SecAggServer(PARAMS, NODES, [(4,)])
    for _ in range(2):
        replies = {}
        for node, message in server.messages().items():
            sessions = ClientSessions(states[node], node)
            replies[node] = sessions.step(rnd, message)
            sessions.save()
        assert server.receive(replies) is None
    return server


def test_two_rounds_in_flight_keep_separate_states_and_keys() -> None:
    states = {node: RecordDict() for node in NODES}
    setup_round(states, 1)
    setup_round(states, 2)
    held = ClientSessions(states[11], 11)
    assert held.rounds == [1, 2]
    one, two = (states[11].config_records[f"{STATE_PREFIX}{r}"] for r in (1, 2))
    assert one["pk1"] != two["pk1"] and one["seed"] != two["seed"]


def test_a_stage_without_its_setup_names_the_round() -> None:
    sessions = ClientSessions(RecordDict(), 11)
    with pytest.raises(ValueError, match="no SecAgg\\+ instance of round 4"):
        sessions.step(4, {"stage": "share_keys", "node_ids": [], "pk1": [], "pk2": []})
    with pytest.raises(ValueError, match="unknown SecAgg\\+ stage"):
        sessions.step(4, {"stage": "reveal_everything"})


def test_setup_again_starts_a_fresh_instance() -> None:
    states = {node: RecordDict() for node in NODES}
    setup_round(states, 1)
    before = dict(states[11].config_records[f"{STATE_PREFIX}1"])
    sessions = ClientSessions(states[11], 11)
    sessions.step(1, _setup_message())
    sessions.save()
    after = states[11].config_records[f"{STATE_PREFIX}1"]
    assert after["stage"] == Stage.SETUP
    assert after["pk1"] != before["pk1"] and after["seed"] != before["seed"]


def _setup_message() -> dict:
    server = SecAggServer(PARAMS, NODES, [(4,)])
    return server.setup_messages()[11]


def test_older_rounds_are_forgotten_and_unmask_erases_its_round() -> None:
    states = {node: RecordDict() for node in NODES}
    server = setup_round(states, 1)
    setup_round(states, 2)
    update = [np.ones(4)]
    replies = {}
    for node, message in server.messages().items():  # collect_masked_vectors of round 1
        sessions = ClientSessions(states[node], node)
        replies[node] = sessions.step(1, message, update, 1.0)
        sessions.save()
    assert server.receive(replies) is None
    unmask = server.messages()
    sessions = ClientSessions(states[11], 11)
    sessions.step(1, unmask[11])
    sessions.save()
    assert sorted(states[11]) == [f"{STATE_PREFIX}2", TRAINED_KEY]
    with pytest.raises(ValueError, match="round 1"):  # a replayed unmask finds nothing
        ClientSessions(states[11], 11).step(1, unmask[11])
    later = ClientSessions(states[12], 12)
    later.forget_before(2)  # node 12 never got its unmask: round 1 is over all the same
    later.save()
    assert sorted(states[12]) == [f"{STATE_PREFIX}2", TRAINED_KEY]


def _collected(states: dict[int, RecordDict], rnd: int) -> tuple[SecAggServer, dict]:
    """Rounds ``rnd``'s setup, share_keys and collect_masked_vectors; the collect messages."""
    server = setup_round(states, rnd)
    messages = server.messages()
    replies = {}
    for node, message in messages.items():
        sessions = ClientSessions(states[node], node)
        sessions.check({rnd: message}, rnd)
        replies[node] = sessions.step(rnd, message, [np.ones(4)], 1.0)
        sessions.save()
    assert server.receive(replies) is None
    return server, messages


def test_a_message_is_checked_whole_before_anything_runs() -> None:
    states = {node: RecordDict() for node in NODES}
    server = setup_round(states, 1)
    collect = server.messages()[11]
    sessions = ClientSessions(states[11], 11)
    with pytest.raises(ValueError, match="training instruction of round 2"):
        sessions.check({1: collect}, 2)  # masks round 2's training under round 1's keys
    with pytest.raises(ValueError, match="at once"):
        sessions.check({1: collect, 2: dict(collect)}, 1)
    with pytest.raises(ValueError, match="missing from the SecAgg"):  # bad setup: no training
        sessions.check({1: collect, 2: {"stage": "setup", "num_shares": 3}}, 1)
    with pytest.raises(ValueError, match="without a SecAgg"):
        sessions.check({}, None)
    sessions.check({1: collect, 2: _setup_message()}, 1)  # the pipelined exchange A


def test_a_round_masked_once_is_never_set_up_or_masked_again() -> None:
    states = {node: RecordDict() for node in NODES}
    _, messages = _collected(states, 3)
    sessions = ClientSessions(states[11], 11)
    assert sessions.trained == 3
    for rnd in (2, 3):  # a reused round would mask the same update under new masks
        with pytest.raises(ValueError, match="already masked its update of round 3"):
            sessions.check({rnd: _setup_message()}, None)
    with pytest.raises(ValueError, match="already masked"):
        sessions.check({3: messages[11]}, 3)
    sessions.check({4: _setup_message()}, None)  # the next round may start
