"""Per-client transforms: sizes, class counts and measured label-noise rates; resize."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from fedrobust.data import build_federation
from fedrobust.data.config import (
    DataConfig,
    FeatureShiftConfig,
    ImbalanceConfig,
    LabelNoiseConfig,
    LimitedConfig,
    PartitionConfig,
)
from fedrobust.data.transforms import (
    apply_feature_shift,
    apply_imbalance,
    apply_label_noise,
    apply_limited,
    resize_images,
)
from fedrobust.errors import FedrobustError

LABELS = np.repeat(np.arange(10), 200)


def test_imbalance_ratio_is_least_over_most_frequent() -> None:
    rows = np.arange(len(LABELS))
    order = np.random.default_rng(0).permutation(10)
    kept = apply_imbalance(
        rows, LABELS, ImbalanceConfig(ratio=0.05), 10, order, np.random.default_rng(1)
    )
    counts = np.bincount(LABELS[kept], minlength=10)
    assert counts[order[0]] == 200
    assert counts[order[-1]] == 10  # 0.05 * 200
    assert np.all(np.diff(counts[order]) <= 0)  # monotone long tail in the shared order


@pytest.mark.parametrize(
    ("cfg", "expected"), [({"fraction": 0.25}, 500), ({"max_samples": 37}, 37)]
)
def test_limited_keeps_the_requested_amount(cfg: dict, expected: int) -> None:
    rows = np.arange(len(LABELS))
    kept = apply_limited(rows, LimitedConfig(**cfg), np.random.default_rng(0))
    assert len(kept) == expected
    assert len(np.unique(kept)) == expected


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_label_noise_rate_is_measured_near_the_setting(kind: str, rate: float) -> None:
    noisy = apply_label_noise(
        LABELS, LabelNoiseConfig(kind=kind, rate=rate), 10, np.random.default_rng(0)
    )
    changed = noisy != LABELS
    assert abs(changed.mean() - rate) < 0.03
    if kind == "pairflip":
        assert np.all(noisy[changed] == (LABELS[changed] + 1) % 10)
    else:  # uniform over the 9 other classes
        shifts = np.bincount((noisy[changed] - LABELS[changed]) % 10, minlength=10)
        assert shifts[0] == 0 and shifts[1:].min() > 0.5 * shifts[1:].mean()


def test_federation_records_measured_noise_and_keeps_validation_clean() -> None:
    cfg = DataConfig(
        dataset="digits",
        partition=PartitionConfig(kind="iid", num_clients=3),
        label_noise=LabelNoiseConfig(kind="symmetric", rate=0.3),
        limited=LimitedConfig(max_samples=200),
    )
    fed = build_federation(cfg, seed=0)
    summary = fed.summary()
    assert abs(summary["noise_rate"] - 0.3) < 0.06
    for client, row in zip(fed.clients, summary["clients"], strict=True):
        assert len(client.y_train) == 200 == row["train"]
        assert row["noise_rate"] == pytest.approx(
            np.mean(client.y_train != client.y_train_clean), abs=1e-6
        )
        assert sum(row["label_histogram"]) == 200


def test_resize_keeps_a_constant_image_constant_and_reaches_the_size() -> None:
    x = np.full((3, 1, 8, 8), 0.25, dtype=np.float32)
    out = resize_images(x, (28, 28), "data.resize")
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_resize_of_an_upsampled_image_back_down_is_close_to_it() -> None:
    ramp = np.add.outer(np.arange(8), np.arange(8)) / 14  # smooth: survives the round trip
    x = np.stack([ramp, ramp.T[::-1]])[:, None].astype(np.float32)
    there_and_back = resize_images(resize_images(x, (32, 32), "f"), (8, 8), "f")
    assert np.abs(there_and_back - x).mean() < 0.05


def test_resize_refuses_flat_inputs_naming_the_field() -> None:
    with pytest.raises(FedrobustError, match="data.resize"):
        resize_images(np.zeros((2, 64), np.float32), (8, 8), "data.resize")


def test_resized_federation_has_the_new_input_shape_and_same_labels() -> None:
    plain = build_federation(DataConfig(dataset="digits"), seed=0)
    resized = build_federation(DataConfig(dataset="digits", resize=[28, 28]), seed=0)
    assert resized.spec.shape == (1, 28, 28) and plain.spec.shape == (1, 8, 8)
    np.testing.assert_array_equal(resized.y_test, plain.y_test)
    assert resized.clients[0].x_train.shape[1:] == (1, 28, 28)


def test_resize_needs_height_and_width() -> None:
    with pytest.raises(ValidationError, match="resize"):
        DataConfig(dataset="digits", resize=[28])


def test_a_contrast_shift_works_on_sequences_and_rotation_needs_images() -> None:
    x = np.full((2, 5, 3), 0.9, dtype=np.float32)
    shifted = apply_feature_shift(x, FeatureShiftConfig(kind="contrast", min_contrast=0.5), 1, 2)
    assert shifted.shape == x.shape and np.allclose(shifted, 0.7)
    with pytest.raises(ValueError, match="rotate"):
        apply_feature_shift(x, FeatureShiftConfig(kind="rotate"), 1, 2)
