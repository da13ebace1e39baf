"""The federation's per-client splits: the local test split and the feature shift."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedrobust.data import build_federation
from fedrobust.data.config import DataConfig
from fedrobust.errors import FedrobustError
from fedrobust.scenario import parse_scenario


def _data(**fields: Any) -> DataConfig:
    partition = {"kind": "pathological", "num_clients": 4, "classes_per_client": 3}
    return DataConfig.model_validate({"dataset": "digits", "partition": partition, **fields})


def test_local_test_split_is_drawn_from_each_clients_own_partition() -> None:
    fed = build_federation(_data(local_test_fraction=0.2), seed=0)
    plain = build_federation(_data(), seed=0)
    for client, without in zip(fed.clients, plain.clients, strict=True):
        assert client.y_test is not None and client.x_test is not None
        assert len(client.y_test) >= 0.15 * (len(client.y_train) + len(client.y_test))
        # from the client's own classes, disjoint from its training and validation data
        assert set(client.y_test) <= set(without.y_train) | set(without.y_val)
        rows = {x.tobytes() for x in client.x_test}
        assert not rows & {x.tobytes() for x in client.x_train}
        assert not rows & {x.tobytes() for x in client.x_val}
        # validation is the same as without a local test split; training lost those rows
        np.testing.assert_array_equal(client.x_val, without.x_val)
        assert len(client.y_train) + len(client.y_test) == len(without.y_train)
        assert without.y_test is None and not without.has_local_test
    assert fed.summary()["clients"][0]["local_test"] == len(fed.clients[0].y_test)  # type: ignore[arg-type]


def test_held_out_shares_that_leave_no_training_data_are_refused() -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario({"name": "x", "data": {"val_fraction": 0.5, "local_test_fraction": 0.5}})
    assert info.value.where == "data.local_test_fraction"


@pytest.mark.parametrize("kind", ["rotate", "contrast"])
def test_feature_shift_grows_from_the_first_client_to_the_last(kind: str) -> None:
    shifted = build_federation(_data(feature_shift={"kind": kind}, local_test_fraction=0.2), 0)
    plain = build_federation(_data(local_test_fraction=0.2), 0)
    gaps = []
    for a, b in zip(shifted.clients, plain.clients, strict=True):
        np.testing.assert_array_equal(a.y_train, b.y_train)  # labels untouched
        for x_a, x_b in ((a.x_train, b.x_train), (a.x_val, b.x_val), (a.x_test, b.x_test)):
            assert x_a.shape == x_b.shape and x_a.dtype == np.float32  # type: ignore[union-attr]
        gaps.append(float(np.abs(a.x_train - b.x_train).mean()))
        assert float(np.abs(a.x_test - b.x_test).mean()) == pytest.approx(gaps[-1], rel=0.5)  # type: ignore[operator]
    assert gaps[0] < 1e-6  # client 0 unshifted
    assert gaps == sorted(gaps) and gaps[-1] > 0.05
    np.testing.assert_array_equal(shifted.x_test, plain.x_test)  # the server's test set stays


def test_feature_shift_fields_apply_to_their_kind_only() -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario(
            {"name": "x", "data": {"feature_shift": {"kind": "contrast", "degrees": 30}}}
        )
    assert info.value.where == "data.feature_shift.degrees"
