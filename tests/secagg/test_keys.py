"""X25519 key agreement and share encryption: both sides agree, hostile keys are refused."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from fedrobust.secagg.keys import (
    ENCRYPTION_PURPOSE,
    MASK_PURPOSE,
    agree,
    decrypt,
    encrypt,
    generate_key_pair,
    load_peer_key,
    load_private_key,
    public_key_of,
)

_P = 2**255 - 19
#: Small-order u-coordinates, non-canonical encodings (u + p) and one with the top bit set.
_SMALL_ORDER = [
    0,
    1,
    _P - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    _P,
    _P + 1,
    2**255 + 1,
]


def test_both_sides_agree_and_purposes_give_separate_keys() -> None:
    sk_u, pk_u = generate_key_pair()
    sk_v, pk_v = generate_key_pair()
    assert len(sk_u) == len(pk_u) == 32 and public_key_of(sk_u) == pk_u
    peer_v, peer_u = load_peer_key(pk_v), load_peer_key(pk_u)
    assert peer_v is not None and peer_u is not None
    key_uv = agree(load_private_key(sk_u), peer_v, ENCRYPTION_PURPOSE)
    key_vu = agree(load_private_key(sk_v), peer_u, ENCRYPTION_PURPOSE)
    mask_uv = agree(load_private_key(sk_u), peer_v, MASK_PURPOSE)
    assert key_uv == key_vu and key_uv is not None and len(key_uv) == 32
    assert mask_uv not in (None, key_uv)
    assert public_key_of(sk_u[:31]) is None


@pytest.mark.parametrize("u", _SMALL_ORDER)
def test_small_order_keys_are_refused_and_agreement_with_them_fails_softly(u: int) -> None:
    raw = (u % 2**256).to_bytes(32, "little")
    assert load_peer_key(raw) is None
    private_key = load_private_key(generate_key_pair()[0])
    # The check above is what keeps a hostile key out; agree() is the second line.
    assert agree(private_key, X25519PublicKey.from_public_bytes(raw), MASK_PURPOSE) is None


@pytest.mark.parametrize(
    "value",
    [None, "a" * 32, bytearray(32), b"", b"\x07" * 31, b"\x07" * 33, [b"x"]],
    ids=["none", "str", "bytearray", "empty", "31_bytes", "33_bytes", "list"],
)
def test_anything_but_32_key_bytes_is_refused(value: object) -> None:
    assert load_peer_key(value) is None


def test_random_32_bytes_are_usable_keys() -> None:
    private_key = load_private_key(generate_key_pair()[0])
    for _ in range(50):
        peer = load_peer_key(os.urandom(32))
        assert peer is not None and agree(private_key, peer, MASK_PURPOSE) is not None


def test_share_ciphertexts_authenticate() -> None:
    key, other = os.urandom(32), os.urandom(32)
    ciphertext = encrypt(key, b"shares")
    assert decrypt(key, ciphertext) == b"shares"
    assert encrypt(key, b"shares") != ciphertext  # a fresh nonce each time
    flipped = bytearray(ciphertext)
    flipped[-1] ^= 1
    for bad in (bytes(flipped), ciphertext[:-1], ciphertext[:12], b"", b"garbage" * 9):
        assert decrypt(key, bad) is None
    assert decrypt(other, ciphertext) is None
