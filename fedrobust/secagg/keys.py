"""SecAgg+ key agreement (X25519 + HKDF-SHA256) and share encryption (AES-256-GCM).

Keys travel and are stored raw: 32-byte X25519 private and public keys. A public key a client
sends is checked (:func:`load_peer_key`) before anyone agrees a key with it; the agreed secret
goes through HKDF-SHA256 with a purpose string, so the share-encryption keys (from ``sk1``/``pk1``)
and the pairwise-mask seeds (from ``sk2``/``pk2``) are separate 32-byte keys. X25519 gives about
128-bit security, the instantiation of the SecAgg+ paper (Bell et al. 2020).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: HKDF purpose of the key that encrypts the shares two group members send each other.
ENCRYPTION_PURPOSE = b"fedrobust-secagg-share-encryption-v1"
#: HKDF purpose of the seed of the pairwise mask two partners add.
MASK_PURPOSE = b"fedrobust-secagg-pairwise-mask-v1"
#: Associated data of every share ciphertext (binds it to this use).
_CIPHERTEXT_AAD = b"fedrobust-secagg-shares-v1"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_FIELD = 2**255 - 19
#: u-coordinates (mod p) of the points of small order on Curve25519 and its twist: an
#: exchange with any of them gives the all-zero secret, whatever the private key.
_LOW_ORDER = frozenset(
    {
        0,
        1,
        _FIELD - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    }
)


def generate_key_pair() -> tuple[bytes, bytes]:
    """Return a fresh X25519 key pair as raw ``(private_key, public_key)``, 32 bytes each."""
    private_key = X25519PrivateKey.generate()
    return private_key.private_bytes_raw(), private_key.public_key().public_bytes_raw()


def load_private_key(raw: bytes) -> X25519PrivateKey:
    """Return the X25519 private key of 32 raw bytes (``ValueError`` for another length)."""
    return X25519PrivateKey.from_private_bytes(raw)


def public_key_of(secret: bytes) -> bytes | None:
    """The raw public key of the raw private key ``secret``; ``None`` when it is not one."""
    if len(secret) != _KEY_BYTES:
        return None
    return load_private_key(secret).public_key().public_bytes_raw()


def load_peer_key(raw: object) -> X25519PublicKey | None:
    """Return the public key ``raw`` holds if X25519 with this protocol's keys can use it.

    Refused (``None``): anything but 32 ``bytes``, and the points of small order, with which
    every exchange gives the all-zero secret (``cryptography`` raises on them).

    Parameters
    ----------
    raw : object
        What a client sent as its public key (32 raw bytes when sound).

    Returns
    -------
    X25519PublicKey | None
        The key, or ``None`` when it is unusable.
    """
    if not isinstance(raw, bytes) or len(raw) != _KEY_BYTES:
        return None
    # RFC 7748: the top bit is ignored, the rest is taken mod p.
    u = (int.from_bytes(raw, "little") & ((1 << 255) - 1)) % _FIELD
    if u in _LOW_ORDER:
        return None
    try:
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def agree(private_key: X25519PrivateKey, peer: X25519PublicKey, purpose: bytes) -> bytes | None:
    """Return the 32-byte key ``HKDF-SHA256(X25519(private_key, peer), info=purpose)``.

    Parameters
    ----------
    private_key : X25519PrivateKey
        This side's private key.
    peer : X25519PublicKey
        The other side's public key (checked by :func:`load_peer_key`).
    purpose : bytes
        :data:`ENCRYPTION_PURPOSE` or :data:`MASK_PURPOSE`.

    Returns
    -------
    bytes | None
        The derived key, the same on both sides; ``None`` when the exchange fails (a
        small-order key), so that a hostile key drops only its sender.
    """
    try:
        shared = private_key.exchange(peer)
    except ValueError:
        return None
    kdf = HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=purpose)
    return kdf.derive(shared)


def encrypt(key: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM under ``key`` with a random 12-byte nonce: ``nonce | ciphertext | tag``."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _CIPHERTEXT_AAD)


def decrypt(key: bytes, ciphertext: bytes) -> bytes | None:
    """The plaintext of :func:`encrypt`'s ``ciphertext``; ``None`` when it does not authenticate."""
    if len(ciphertext) < _NONCE_BYTES + 16:
        return None
    nonce, body = ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, body, _CIPHERTEXT_AAD)
    except (InvalidTag, ValueError):
        return None
