"""The colluding attacker rewrites only the malicious replies, from the benign ones."""

from __future__ import annotations

import numpy as np
import pytest

from fedrobust.robust.malicious import malicious_clients
from fedrobust.robust.server import collude
from fedrobust.robust.updates import flat_delta
from fedrobust.scenario import parse_scenario
from tests.federation.test_screening import GLOBAL, reply


@pytest.mark.parametrize("kind", ["ipm", "alie", "minmax"])
def test_malicious_replies_get_the_colluding_update_and_honest_ones_stay(kind: str) -> None:
    sc = parse_scenario({"name": "c", "data": {"partition": {"kind": "iid", "num_clients": 6}},
                         "attack": {"kind": kind, "count": 2, "start_round": 2}})  # fmt: skip
    bad = malicious_clients(sc)
    rng = np.random.default_rng(0)
    partition_of = {100 + pid: pid for pid in range(6)}
    values = {pid: rng.normal(size=(2, 3)).astype(np.float32) for pid in range(6)}

    def replies() -> list:
        return [reply(100 + pid, {"w": values[pid], "b": np.full(3, pid, np.float32)})
                for pid in range(6)]  # fmt: skip

    early = collude(sc, 1, replies(), GLOBAL, partition_of)  # before start_round
    assert [flat_delta(m.content.array_records["arrays"], GLOBAL)[0] for m in early] == [
        values[pid][0, 0] for pid in range(6)
    ]
    out = collude(sc, 2, replies(), GLOBAL, partition_of)
    deltas = {partition_of[m.metadata.src_node_id]: flat_delta(m.content.array_records["arrays"],
                                                               GLOBAL) for m in out}  # fmt: skip
    honest = np.stack([deltas[p] for p in range(6) if p not in bad])
    forged = [deltas[p] for p in sorted(bad)]
    assert np.array_equal(forged[0], forged[1])  # every attacker sends the same vector
    if kind == "ipm":
        assert np.allclose(forged[0], -0.5 * honest.mean(axis=0), atol=1e-6)
    for p in range(6):
        if p not in bad:
            assert np.allclose(deltas[p][:6], values[p].ravel())
