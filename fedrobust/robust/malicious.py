"""Which clients are malicious: a seeded choice, the same on the server and the clients."""

from __future__ import annotations

from fedrobust.scenario import Scenario
from fedrobust.seeds import Stream, stream


def malicious_clients(scenario: Scenario) -> frozenset[int]:
    """The partition ids of the malicious clients (empty without ``attack``).

    Drawn from ``[seed, 5]``, so the server (metrics, colluding attacker) and every
    ClientApp agree without being told.
    """
    n = scenario.data.partition.num_clients
    count = scenario.attack.num_malicious(n)
    if count == 0:
        return frozenset()
    rng = stream(scenario.seed, Stream.MALICIOUS)
    return frozenset(int(pid) for pid in rng.choice(n, size=count, replace=False))


def attacking(scenario: Scenario, partition_id: int, rnd: int) -> bool:
    """Whether client ``partition_id`` attacks in round ``rnd``."""
    return rnd >= scenario.attack.start_round and partition_id in malicious_clients(scenario)
