"""Our Shamir sharing over GF(2**521 - 1): any t shares rebuild, t - 1 do not, nothing raises
on hostile share bytes where the server reads them."""

from __future__ import annotations

import itertools
import os
import random

import pytest

from fedrobust.secagg.checks import share_fits
from fedrobust.secagg.shamir import (
    HEADER_BYTES,
    PRIME,
    VALUE_BYTES,
    combine_shares,
    create_shares,
    parse_share,
)
from fedrobust.secagg.unmask import reconstruct


def _secret(length: int, seed: int) -> bytes:
    """Random bytes whose first three are zero (leading zeros must survive)."""
    body = random.Random(seed).randbytes(length)
    return b"\x00\x00\x00" + body[3:]


@pytest.mark.parametrize("length", [16, 32, 48, 65, 66, 130, 201])
def test_any_threshold_of_the_shares_rebuild_the_secret(length: int) -> None:
    secret = _secret(length, length)
    shares = create_shares(secret, 3, 5)
    assert [parse_share(share)[0] for share in shares] == [1, 2, 3, 4, 5]  # type: ignore[index]
    for subset in itertools.combinations(shares, 3):
        assert combine_shares(list(subset)) == secret
    assert combine_shares(shares) == secret  # more than t also works
    assert combine_shares(list(reversed(shares[1:4]))) == secret  # order does not matter


@pytest.mark.parametrize("length", [16, 32, 48, 200])
def test_fewer_than_threshold_shares_give_another_value(length: int) -> None:
    secret = _secret(length, 7 * length)
    shares = create_shares(secret, 4, 7)
    for subset in itertools.combinations(shares, 3):
        try:
            rebuilt = combine_shares(list(subset))
        except ValueError:
            continue  # the interpolated value does not even fit the secret's length
        assert rebuilt != secret


def test_sharing_is_randomised_and_checks_its_arguments() -> None:
    secret = bytes(32)
    assert create_shares(secret, 2, 3) != create_shares(secret, 2, 3)
    assert combine_shares(create_shares(secret, 1, 2)[1:]) == secret
    with pytest.raises(ValueError, match="secret"):
        create_shares(b"", 2, 3)
    with pytest.raises(ValueError, match="threshold"):
        create_shares(secret, 4, 3)
    with pytest.raises(ValueError, match="threshold"):
        create_shares(secret, 0, 3)


def _hostile_shares(share: bytes) -> list[object]:
    x_zero = bytes(4) + share[4:]
    too_high = share[:HEADER_BYTES] + PRIME.to_bytes(VALUE_BYTES, "big")
    wrong_length = share[:4] + (999).to_bytes(4, "big") + share[HEADER_BYTES:]
    zero_length = share[:4] + bytes(4) + share[HEADER_BYTES:]
    return [
        b"", b"\x00", share[:-1], share + b"\x00", share[:HEADER_BYTES], x_zero, too_high,
        wrong_length, zero_length, os.urandom(len(share)), b"\xff" * len(share), "text", None,
        12, [share], bytearray(share),
    ]  # fmt: skip


def test_hostile_share_bytes_never_raise_where_the_server_reads_them() -> None:
    secret = _secret(32, 1)
    shares = create_shares(secret, 3, 5)
    assert len(shares[0]) == HEADER_BYTES + VALUE_BYTES  # too_high replaces its one value
    for hostile in _hostile_shares(shares[0]):
        assert parse_share(hostile) is None
        assert not share_fits(hostile, 1)
        with pytest.raises(ValueError):
            combine_shares([hostile, *shares[1:3]])  # type: ignore[list-item]
    assert share_fits(shares[0], 1) and not share_fits(shares[0], 2)
    # Shares disagreeing on the length, or repeating an x, are refused rather than mixed.
    other = create_shares(_secret(33, 2), 3, 5)
    with pytest.raises(ValueError, match="length"):
        combine_shares([shares[0], shares[1], other[2]])
    with pytest.raises(ValueError, match="repeat"):
        combine_shares([shares[0], shares[0], shares[2]])
    with pytest.raises(ValueError):
        combine_shares([])


def test_reconstruct_skips_a_corrupted_share_and_survives_garbage() -> None:
    secret = _secret(32, 3)
    shares = create_shares(secret, 3, 5)
    broken = bytearray(shares[0])
    broken[HEADER_BYTES + 20] ^= 0x55
    pool = [bytes(broken), *shares[1:]]
    rebuilt, tried = reconstruct(pool, 3, lambda value: value == secret)
    assert rebuilt == secret and tried > 1
    garbage = [os.urandom(len(shares[0])) for _ in range(5)]
    assert reconstruct(garbage, 3, lambda value: value == secret) == (None, 10)
