"""Shamir secret sharing of byte strings over the prime field GF(2**521 - 1), without threads.

A secret of ``L`` bytes is cut into chunks of :data:`CHUNK_BYTES` (65) bytes, each read as a
big-endian integer below ``2**520 < PRIME``; every chunk is the constant term of its own random
polynomial of degree ``threshold - 1`` (coefficients from :mod:`secrets`). The share for the
1-based x-coordinate ``x`` holds the polynomials' values at ``x``.

Share layout (big-endian): ``x`` (4 bytes) | ``L`` (4 bytes) | one :data:`VALUE_BYTES` (66)
byte value below ``PRIME`` per chunk. ``L`` fixes the length of the last chunk, so a secret
with leading zero bytes comes back whole. :func:`parse_share` checks all of it and never raises;
:func:`combine_shares` interpolates at 0 (Lagrange) and raises only ``ValueError``.

Any ``threshold`` shares rebuild the secret; fewer reveal nothing about it (each chunk is
uniformly hidden). Nothing here detects a corrupted share: a wrong share rebuilds a wrong value,
which the caller must check (the SecAgg+ server checks commitments and public keys).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

#: The field's modulus, the Mersenne prime 2**521 - 1.
PRIME = 2**521 - 1
#: Secret bytes per field element (65 * 8 = 520 bits, below the prime).
CHUNK_BYTES = 65
#: Bytes of one field element in a share (521 bits rounded up).
VALUE_BYTES = 66
#: Share header: the x-coordinate, then the secret's length, 4 bytes each.
HEADER_BYTES = 8
#: Largest x-coordinate (and share count) the 4-byte header holds.
MAX_SHARES = 2**32 - 1


def _num_chunks(length: int) -> int:
    return -(-length // CHUNK_BYTES)


def create_shares(secret: bytes, threshold: int, num_shares: int) -> list[bytes]:
    """Split ``secret`` into ``num_shares`` shares, any ``threshold`` of which rebuild it.

    Parameters
    ----------
    secret : bytes
        The secret (1 to ``2**32 - 1`` bytes).
    threshold : int
        Shares needed to rebuild it (``1 <= threshold <= num_shares``).
    num_shares : int
        Shares to make; share ``i`` (0-based) has x-coordinate ``i + 1``.

    Returns
    -------
    list[bytes]
        The shares, in x order.

    Raises
    ------
    ValueError
        When the secret is empty or too long, or the counts are out of range.
    """
    if not 1 <= len(secret) <= 2**32 - 1:
        raise ValueError(f"secret: need 1 to 2**32 - 1 bytes, got {len(secret)}")
    if not 1 <= threshold <= num_shares <= MAX_SHARES:
        raise ValueError(f"need 1 <= threshold ({threshold}) <= num_shares ({num_shares})")
    chunks = [
        int.from_bytes(secret[start : start + CHUNK_BYTES], "big")
        for start in range(0, len(secret), CHUNK_BYTES)
    ]
    # Per chunk: coefficients of x**1 .. x**(t-1), highest first for Horner's rule.
    polynomials = [
        [secrets.randbelow(PRIME) for _ in range(threshold - 1)] + [chunk] for chunk in chunks
    ]
    header_length = len(secret).to_bytes(4, "big")
    shares = []
    for x in range(1, num_shares + 1):
        parts = [x.to_bytes(4, "big"), header_length]
        for coefficients in polynomials:
            value = 0
            for coefficient in coefficients:
                value = (value * x + coefficient) % PRIME
            parts.append(value.to_bytes(VALUE_BYTES, "big"))
        shares.append(b"".join(parts))
    return shares


def parse_share(share: object) -> tuple[int, int, list[int]] | None:
    """Read a share made by :func:`create_shares`; ``None`` when it is not well formed.

    Well formed: ``bytes``, a header with ``x >= 1`` and a secret length ``>= 1``, exactly the
    values that length needs, each below :data:`PRIME`. Never raises.

    Parameters
    ----------
    share : object
        What claims to be a share.

    Returns
    -------
    tuple[int, int, list[int]] | None
        ``(x, secret_length, values)``, or ``None``.
    """
    if not isinstance(share, bytes) or len(share) < HEADER_BYTES + VALUE_BYTES:
        return None
    x = int.from_bytes(share[:4], "big")
    length = int.from_bytes(share[4:HEADER_BYTES], "big")
    body = len(share) - HEADER_BYTES
    if x < 1 or length < 1 or body != _num_chunks(length) * VALUE_BYTES:
        return None
    values = [
        int.from_bytes(share[start : start + VALUE_BYTES], "big")
        for start in range(HEADER_BYTES, len(share), VALUE_BYTES)
    ]
    if any(value >= PRIME for value in values):
        return None
    return x, length, values


def combine_shares(shares: Sequence[bytes]) -> bytes:
    """Rebuild the secret from shares by Lagrange interpolation at 0.

    With ``threshold`` or more sound shares of one secret this is the secret; with fewer, or a
    corrupted one, it is some other value (or ``ValueError`` when that value cannot be the
    secret's bytes).

    Parameters
    ----------
    shares : Sequence[bytes]
        Shares of one secret (distinct x-coordinates).

    Returns
    -------
    bytes
        The secret.

    Raises
    ------
    ValueError
        When there is no share, a share is not well formed, the shares disagree on the
        secret's length or repeat an x-coordinate, or a rebuilt chunk does not fit its bytes.
    """
    parsed = [parse_share(share) for share in shares]
    if not parsed or any(item is None for item in parsed):
        raise ValueError("shares: empty, or one is not a well-formed share")
    points = [item for item in parsed if item is not None]
    xs = [x for x, _, _ in points]
    lengths = {length for _, length, _ in points}
    if len(lengths) != 1 or len(set(xs)) != len(xs):
        raise ValueError("shares: they disagree on the secret's length or repeat an x")
    # Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i)  (mod PRIME).
    weights = []
    for i, x_i in enumerate(xs):
        numerator, denominator = 1, 1
        for j, x_j in enumerate(xs):
            if j != i:
                numerator = numerator * x_j % PRIME
                denominator = denominator * (x_j - x_i) % PRIME
        weights.append(numerator * pow(denominator, -1, PRIME) % PRIME)
    (length,) = lengths
    out = []
    for index in range(_num_chunks(length)):
        terms = zip(weights, points, strict=True)
        chunk = sum(weight * values[index] for weight, (_, _, values) in terms) % PRIME
        size = min(CHUNK_BYTES, length - index * CHUNK_BYTES)
        if chunk >= 1 << (8 * size):
            raise ValueError("shares: the rebuilt value does not fit the secret's length")
        out.append(chunk.to_bytes(size, "big"))
    return b"".join(out)
