"""Transport choices the server makes from what clients declared at discovery."""

from __future__ import annotations

from fedrobust.federation.transport import secagg_max_weight


def test_one_client_claiming_a_huge_training_set_does_not_set_secaggs_max_weight() -> None:
    assert secagg_max_weight({0: 100, 1: 120, 2: 90}) == 120
    assert secagg_max_weight({0: 100, 1: 120, 2: 10**12, 3: 90}) == 120
    assert secagg_max_weight({}) == 1.0
