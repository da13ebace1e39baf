"""Which clients train in which round: seeded by (scenario seed, round), by partition id.

The server samples with :func:`round_clients`; privacy calibration reads the whole
schedule ahead with :func:`participation_counts`, so both always agree.

Under client-level DP the sample is what the accounting amplifies by: it is drawn from
a secret the server process holds (unless ``privacy.dp.reproducible``), so it cannot be
recomputed from the published seed; within the process each round's draw is fixed, so
SecAgg+ can prepare the next round's clients ahead.
"""

from __future__ import annotations

from fedrobust.scenario import Scenario
from fedrobust.seeds import Stream, process_secret_stream, stream


def round_clients(scenario: Scenario, rnd: int) -> list[int]:
    """Partition ids sampled to train in round ``rnd`` (sorted).

    ``scenario.sampled_per_round()`` of the ``num_clients`` clients, drawn without
    replacement by a generator seeded with ``(seed, 2, rnd)``: the same round of the
    same scenario always samples the same clients, also after a resume. Under
    client-level DP (:func:`secret_sample`) the draw is keyed by the process's secret
    instead (:func:`~fedrobust.seeds.process_secret_stream`): fixed within the run,
    fresh after a resume.
    """
    n = scenario.data.partition.num_clients
    count = scenario.sampled_per_round()
    if count == n:
        return list(range(n))
    if secret_sample(scenario):
        rng = process_secret_stream(Stream.SAMPLING, scenario.seed, rnd)
    else:
        rng = stream(scenario.seed, Stream.SAMPLING, rnd)
    return sorted(int(p) for p in rng.choice(n, size=count, replace=False))


def participation_counts(scenario: Scenario, rounds: int | None = None) -> list[int]:
    """How many of the first ``rounds`` rounds (default: all) each client is sampled in."""
    counts = [0] * scenario.data.partition.num_clients
    for rnd in range(1, (rounds or scenario.train.rounds) + 1):
        for pid in round_clients(scenario, rnd):
            counts[pid] += 1
    return counts


def secret_sample(scenario: Scenario) -> bool:
    """Whether the round's clients are drawn in secret (client-level DP, not reproducible)."""
    dp = scenario.privacy.dp
    return dp.mode == "client" and not dp.reproducible
