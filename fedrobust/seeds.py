"""Where randomness comes from: named streams of the public seed, and the secret source.

Two kinds of randomness, two homes:

- **Reproducible** randomness (splits, initialisation, batch order, augmentation,
  attacks, simulated dropouts) derives from the scenario's public ``seed`` through a
  named :class:`Stream`, so the same scenario and seed give the same run.
- **Protecting** randomness (DP-SGD noise and Poisson batches, client-level DP noise,
  the client sample under client-level DP, a defence's buckets, coordinate subsamples and
  noise) comes from the operating system's secret
  entropy (:func:`secret_seed`, :func:`secret_rng`). Those draws use Mersenne-Twister
  generators (torch's and numpy's) seeded with 63 to 256 secret bits: nobody holding the
  run directory can regenerate them. ``privacy.dp.reproducible: true`` derives them from
  the seed instead, for research; such runs say ``privacy_valid: false``;
  ``defense.reproducible: true`` does the same for a defence's draws.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """Tags of the seed-derived streams: ``np.random.default_rng([seed, tag, ...])``."""

    PARTITION = 1  # a client's split (with the client id)
    SAMPLING = 2  # clients per round (with the round)
    CLIENT_DP_NOISE = 3  # Flower's client-level noise, reproducible runs only
    MALICIOUS = 5  # which clients attack
    POISON_DATA = 6  # label flips and triggers
    POISON_NOISE = 7  # gaussian update noise (of a client's round seed)
    LONG_TAIL = 7  # the long tail's class order (of the scenario seed)
    CANARIES = 7  # with 1: canary images, labels and membership
    FLTRUST_ROOT = 8  # FLTrust's root set
    SECAGG_DROPOUT = 9  # simulated SecAgg+ dropouts (with the round)
    CONTINUAL_OFFSET = 10  # a client's task offset (with the client id)
    HOLDOUT = 11  # a device's validation split; the robust-evaluation subset
    POOL_ORDER = 12  # the order contiguous partitioners (iid, size, ...) cut the pool in
    LABELED = 13  # which of a client's training examples keep their labels (with the client)
    DEFENSE = 14  # a defence's draws (bucketing, DnC, FLAME), ``defense.reproducible`` only
    SYNTHETIC = 15  # the ``synthetic:`` source (0: labels, 1: templates, 2 and chunk: examples)


# Tags shared by two names draw from different seeds or different extra ints, so their
# streams differ; they keep the values runs have always used.


def stream(seed: int, tag: Stream, *more: int) -> np.random.Generator:
    """The generator of stream ``tag`` of ``seed`` (``more``: round, client, ...)."""
    return np.random.default_rng([seed, int(tag), *more])


def client_seed(seed: int, rnd: int, client: int) -> int:
    """The seed of one client's local round (batch order, augmentation, attacks)."""
    return seed * 1_000_003 + rnd * 10_007 + client


def secret_seed() -> int:
    """63 bits of the operating system's secret entropy (for a torch generator)."""
    return secrets.randbits(63)


#: 32 secret bytes drawn once per process; nothing writes them down.
_PROCESS_KEY = secrets.token_bytes(32)


def process_secret_stream(tag: Stream, *more: int) -> np.random.Generator:
    """A generator keyed by this process's secret: the same draws for the same ``tag`` and
    ``more`` within one process (the server draws a round's secret client sample ahead,
    for SecAgg+'s pipelining, and again when the round comes), unknowable outside it.

    Its seed is ``HMAC-SHA256(key, tag, more...)``: a pseudorandom function of the public
    inputs, so draws for one round say nothing of another's."""
    message = ",".join(str(int(v)) for v in (tag, *more)).encode()
    seed = hmac.new(_PROCESS_KEY, message, hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(seed, "big"))


def secret_rng() -> np.random.Generator:
    """A numpy generator seeded with 256 secret bits."""
    return np.random.default_rng(secrets.randbits(256))


def secret_legacy_seed() -> np.ndarray:
    """256 secret bits in the form ``np.random.seed`` takes (Flower's DP noise uses it)."""
    return np.frombuffer(secrets.token_bytes(32), dtype=np.uint32).copy()
