"""Public keys a SecAgg+ client publishes, checked before anyone agrees a key with them."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.supercore.primitives.asymmetric import bytes_to_public_key


def load_peer_key(pem: object) -> ec.EllipticCurvePublicKey | None:
    """Return the public key ``pem`` holds if ECDH with this protocol's keys can use it.

    Flower's key pairs are on SECP384R1; a key that does not parse, is not an elliptic-curve
    key, or lies on another curve would make ``generate_shared_key`` raise.

    Parameters
    ----------
    pem : object
        What a client sent as its public key (PEM bytes when sound).

    Returns
    -------
    ec.EllipticCurvePublicKey | None
        The key, or ``None`` when it is unusable.
    """
    if not isinstance(pem, bytes):
        return None
    try:
        key = bytes_to_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        return None
    return key
