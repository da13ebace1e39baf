"""SecAgg+ parameters: their validation against the cohort size and the error bounds they imply.

Encoding (what the parameters mean)
-----------------------------------
A client with update ``x`` (float arrays) and weight ``w`` (``0 <= w <= max_weight``) sends,
masked, the integer vectors

- ``q = quantize(r * clip(x, -c, c))`` with ``c = clipping_range``, ``Q = quantization_range``,
  ``r = w_q / Q`` and ``w_q = round(w / max_weight * Q)``; ``q`` lies in ``[0, Q]``,
- ``[w_q]`` (its quantised weight) and ``[n_clipped]`` (how many values it clipped).

So each summed coordinate is at most ``num_clients * max(Q, num_values)``, which must stay below
``modulus_range`` for the sum not to wrap. The client's *effective* weight is
``w_hat = max_weight * w_q / Q`` (``|w_hat - w| <= max_weight / (2 Q)``); the server decodes
``sum_u w_hat_u * clip(x_u)`` and ``sum_u w_hat_u``, see :func:`error_bounds`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from fedrobust.config.base import Section

#: Largest modulus: masked values are int64 and ``a + b`` of two values below it must not overflow.
MAX_MODULUS_RANGE = 2**62
#: Largest quantisation range (a client's quantised values then stay far inside 32 bits).
MAX_QUANTIZATION_RANGE = 2**30


class Stage(StrEnum):
    """The four SecAgg+ stages, in protocol order; the value is the message's ``"stage"``."""

    SETUP = "setup"
    SHARE_KEYS = "share_keys"
    COLLECT_MASKED_VECTORS = "collect_masked_vectors"
    UNMASK = "unmask"


@dataclass(frozen=True)
class SecAggParams:
    """Parameters of one SecAgg+ round.

    Parameters
    ----------
    num_shares : int | float
        Size of each client's share group: itself plus ``num_shares - 1`` neighbours, each of
        which holds one Shamir share of its secrets. A float in ``(0, 1]`` is a fraction of the
        sampled clients; :func:`resolve_params` turns it into an int. Must be at least 3 and,
        when smaller than the number of clients, odd (the neighbour graph is a ring with
        ``(num_shares - 1) / 2`` neighbours on each side, see :func:`~.graph.share_groups`).
    reconstruction_threshold : int | float
        Shares needed to rebuild a secret, ``2 <= t <= num_shares``; a float in ``(0, 1]`` is a
        fraction of ``num_shares`` (rounded up, at least 2). Every share group must keep ``t``
        live members through the round. Must exceed ``num_shares / 2`` (then no two disjoint
        subsets of a group can both reach ``t``: a server cannot collect the shares of ``b``
        from one half and those of ``sk2`` from the other) unless ``allow_low_threshold``.
    clipping_range : float
        Update values are clipped to ``[-clipping_range, clipping_range]`` before quantisation.
    quantization_range : int
        Number of quantisation steps across ``[-clipping_range, clipping_range]`` (and across
        ``[0, max_weight]`` for the weight); at most ``2**30``.
    modulus_range : int | None
        Modulus of the masked arithmetic, a power of two, at most ``2**62``, larger than
        ``num_clients * max(quantization_range, num_values)`` so the sum cannot wrap.
        ``None`` (the default): the smallest such power of two, at least ``2**32`` (masked
        values then travel as 32-bit integers up to 1,023 clients at the default
        quantisation).
    max_weight : float
        Largest client weight; a client with a larger weight refuses to mask.
    allow_low_threshold : bool
        Accept ``reconstruction_threshold <= num_shares / 2`` (default false).
    """

    num_shares: int | float
    reconstruction_threshold: int | float
    clipping_range: float = 8.0
    quantization_range: int = 2**22
    modulus_range: int | None = None
    max_weight: float = 1000.0
    allow_low_threshold: bool = False

    def to_dict(self) -> dict[str, int | float]:
        """Return the parameters as a flat dict (fits a Flower ``ConfigRecord``).

        Returns
        -------
        dict[str, int | float]
            One entry per field, keyed by the field name.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SecAggParams:
        """Build parameters from a dict holding (at least) one entry per field.

        Parameters
        ----------
        values : dict[str, Any]
            E.g. a setup message; keys that are not fields are ignored.

        Returns
        -------
        SecAggParams
            The parameters, unvalidated (see :func:`resolve_params`).
        """
        missing = [f.name for f in fields(cls) if f.name not in values]
        if missing:
            raise ValueError(f"{missing[0]}: missing from the SecAgg+ parameters")
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ErrorBounds:
    """Worst-case absolute error per coordinate of a decoded aggregate.

    Relative to the exact (float) aggregate of the *clipped* updates with the *exact* weights.

    Parameters
    ----------
    weighted_sum : float
        Bound on ``|sum_u w_hat_u q_u - sum_u w_u x_u|`` per coordinate:
        ``n * max_weight * c * (2 + 1/2) / Q`` (stochastic rounding moves each client's
        ``r * x`` by less than one step ``2c / Q``; weight rounding adds ``|w_hat - w| * c``).
    total_weight : float
        Bound on ``|sum_u w_hat_u - sum_u w_u|``: ``n * max_weight / (2 Q)`` (0 when every
        weight is a multiple of ``max_weight / Q``, e.g. integer weights with
        ``Q / max_weight`` an integer).
    weighted_mean : float
        Bound on the weighted mean's error: ``3 * n * max_weight * c / (Q * W)`` with ``W`` the
        decoded total weight (rounding: ``2c`` per step; weight rounding moves a convex
        combination of values in ``[-c, c]`` by at most ``sum_u |w_hat_u - w_u| * 2c / W``).
    """

    weighted_sum: float
    total_weight: float
    weighted_mean: float


def error_bounds(params: SecAggParams, num_contributors: int, total_weight: float) -> ErrorBounds:
    """Return the documented error bounds of an aggregate over ``num_contributors`` clients.

    Parameters
    ----------
    params : SecAggParams
        The round's parameters.
    num_contributors : int
        Clients whose masked vectors are in the sum.
    total_weight : float
        The decoded total weight (``inf`` mean bound when it is 0).

    Returns
    -------
    ErrorBounds
        The per-coordinate bounds.
    """
    n = num_contributors
    c = params.clipping_range
    step = params.max_weight / params.quantization_range  # one weight step, w_hat units
    mean = math.inf if total_weight <= 0 else 3.0 * n * step * c / total_weight
    return ErrorBounds(
        weighted_sum=2.5 * n * step * c,
        total_weight=0.5 * n * step,
        weighted_mean=mean,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float(value: object) -> bool:
    return isinstance(value, float)


def _resolve_num_shares(value: int | float, num_clients: int) -> int:
    if _is_float(value):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"num_shares: a fraction must be in (0, 1], got {value}")
        shares = max(3, round(value * num_clients))
        if shares < num_clients and shares % 2 == 0:
            shares += 1
        shares = min(shares, num_clients)
    elif _is_int(value):
        shares = min(value, num_clients)
    else:
        raise ValueError(f"num_shares: must be an int or a float, got {value!r}")
    if shares < 3:
        raise ValueError(
            f"num_shares: must be at least 3 (SecAgg+ needs at least 3 clients), got {shares} "
            f"for {num_clients} clients"
        )
    if shares < num_clients and shares % 2 == 0:
        raise ValueError(
            f"num_shares: must be odd when smaller than the number of clients ({num_clients}): "
            f"a share group is a client and (num_shares - 1) / 2 ring neighbours on each side; "
            f"got {shares}"
        )
    return shares


def _resolve_threshold(value: int | float, num_shares: int, allow_low: bool) -> int:
    if _is_float(value):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"reconstruction_threshold: a fraction must be in (0, 1], got {value}")
        threshold = max(2, math.ceil(value * num_shares))
    elif _is_int(value):
        threshold = value
    else:
        raise ValueError(f"reconstruction_threshold: must be an int or a float, got {value!r}")
    if not 2 <= threshold <= num_shares:
        raise ValueError(
            f"reconstruction_threshold: must be in [2, num_shares={num_shares}], got {threshold}"
        )
    if 2 * threshold <= num_shares and not allow_low:
        raise ValueError(
            f"reconstruction_threshold: {threshold} is not more than half of num_shares="
            f"{num_shares}: two disjoint halves of a share group could then each rebuild a "
            f"secret (the mask seed from one, the masking key from the other), which unmasks "
            f"a client; use more than {num_shares // 2}, or set allow_low_threshold: true"
        )
    return threshold


def resolve_params(params: SecAggParams, num_clients: int, num_values: int = 0) -> SecAggParams:
    """Validate ``params`` for a cohort and return them with integer share counts.

    Fractions become ints (``num_shares``: of the clients, rounded, made odd, clamped to
    ``num_clients``; ``reconstruction_threshold``: of ``num_shares``, rounded up, at least 2); an
    integer ``num_shares`` above ``num_clients`` is clamped. Resolving resolved parameters with
    the same cohort returns them unchanged.

    Parameters
    ----------
    params : SecAggParams
        The requested parameters.
    num_clients : int
        Number of sampled clients.
    num_values : int, optional
        Number of values in the update (the masked clip count must not wrap either).

    Returns
    -------
    SecAggParams
        The resolved parameters.

    Raises
    ------
    ValueError
        When a parameter is invalid; the message starts with the field name.
    """
    if not _is_int(num_clients) or num_clients < 1:
        raise ValueError(f"num_clients: must be a positive int, got {num_clients!r}")
    num_shares = _resolve_num_shares(params.num_shares, num_clients)
    allow_low = params.allow_low_threshold
    if not isinstance(allow_low, bool):
        raise ValueError(f"allow_low_threshold: must be a bool, got {allow_low!r}")
    threshold = _resolve_threshold(params.reconstruction_threshold, num_shares, allow_low)

    c = params.clipping_range
    if not isinstance(c, int | float) or isinstance(c, bool) or not (math.isfinite(c) and c > 0):
        raise ValueError(f"clipping_range: must be a finite number > 0, got {c!r}")
    q = params.quantization_range
    if not _is_int(q) or not 2 <= q <= MAX_QUANTIZATION_RANGE:
        raise ValueError(f"quantization_range: must be an int in [2, 2**30], got {q!r}")
    w = params.max_weight
    if not isinstance(w, int | float) or isinstance(w, bool) or not (math.isfinite(w) and w > 0):
        raise ValueError(f"max_weight: must be a finite number > 0, got {w!r}")
    largest_sum = num_clients * max(q, num_values)
    m = params.modulus_range
    if m is None:
        m = max(2**32, 1 << largest_sum.bit_length())
    if not _is_int(m) or m < 2 or m & (m - 1) != 0 or m > MAX_MODULUS_RANGE:
        raise ValueError(f"modulus_range: must be a power of two in [2, 2**62], got {m!r}")
    if m <= largest_sum:
        raise ValueError(
            f"modulus_range: must exceed num_clients * max(quantization_range, num_values) = "
            f"{num_clients} * {max(q, num_values)} = {largest_sum} so the masked sum cannot "
            f"wrap, got {m}"
        )
    return replace(
        params,
        num_shares=num_shares,
        reconstruction_threshold=threshold,
        clipping_range=float(c),
        max_weight=float(w),
        modulus_range=m,
    )


# ------------------------------------------------- the privacy.secure_aggregation section

#: The stages a simulated dropout can happen at (every stage after setup).
SECAGG_STAGES = tuple(stage.value for stage in Stage if stage is not Stage.SETUP)


class SecAggDropout(Section):
    """Simulated dropouts, for testing: a seeded share of the round's clients whose replies
    the server discards at ``stage``.

    Parameters
    ----------
    stage : str
        share_keys | collect_masked_vectors | unmask.
    fraction : float
        Share of the clients still in the protocol that drop at that stage.
    """

    stage: Literal[SECAGG_STAGES]  # type: ignore[valid-type]
    fraction: Annotated[float, Field(ge=0, le=1)]


class SecAggConfig(Section):
    """SecAgg+ secure aggregation (Bell et al. 2020, ``fedrobust.secagg``): the server learns
    only the sum of the clients' weighted, clipped, quantised updates.

    Parameters
    ----------
    enabled : bool
        Run rounds through SecAgg+ (default true when the section is given).
    num_shares : int or float
        Size of each client's share group (itself and its ring neighbours); a float in
        (0, 1] is a share of the clients sampled per round. At least 3; odd when smaller
        than the clients per round.
    reconstruction_threshold : int or float
        Shares needed to rebuild a dropped client's secret, 2 <= t <= num_shares; a float
        is a share of ``num_shares``. Must be more than half of ``num_shares`` (else two
        disjoint halves of a group could rebuild both secrets of a client and unmask it),
        unless ``allow_low_threshold``.
    clipping_range : float
        Update values (weights minus global weights) are clipped to +-clipping_range and
        counted before masking.
    quantization_range : int
        Quantisation steps across [-clipping_range, clipping_range], at most 2^30.
    modulus_range : int or null
        Modulus of the masked arithmetic: a power of two, at most 2^62, large enough that
        the sum of the clients' values cannot wrap. Default: the smallest that fits, at
        least 2^32 (masked values travel as 32-bit integers while it is 2^32).
    max_weight : float
        Largest client weight (example count); default: the largest client's training set.
    timeout : float
        Seconds the server waits for the replies of each stage; late clients drop out.
    simulate_dropout : SecAggDropout
        For testing: clients whose replies are discarded at one stage.
    allow_low_threshold : bool
        Accept a ``reconstruction_threshold`` of half of ``num_shares`` or less (more
        dropouts tolerated, weaker privacy against a server that lies about who dropped).
        Default false.
    pipeline : bool
        Run the next round's setup and share_keys inside this round's two exchanges (its
        keys ride on this round's collect_masked_vectors and unmask messages), so a round
        costs two message exchanges instead of four. Every round still uses fresh keys,
        seeds and share groups. The first round, a round after a resume, and a round whose
        clients differ from the ones prepared (a client rejoined under a new node id) run
        all four stages. Default true; false runs every round's four stages in turn.
    """

    enabled: bool = True
    num_shares: int | float = 1.0
    reconstruction_threshold: int | float = 0.67
    clipping_range: Annotated[float, Field(gt=0)] = 8.0
    quantization_range: Annotated[int, Field(ge=2, le=2**30)] = 2**22
    modulus_range: Annotated[int, Field(ge=2, le=2**62)] | None = None
    max_weight: Annotated[float, Field(gt=0)] | None = None
    timeout: Annotated[float, Field(gt=0, le=86400)] = 120.0
    simulate_dropout: SecAggDropout | None = None
    allow_low_threshold: bool = False
    pipeline: bool = True

    def params(self, max_weight: float) -> SecAggParams:
        """The protocol parameters (``max_weight`` when the section leaves it unset)."""
        return SecAggParams(
            num_shares=self.num_shares,
            reconstruction_threshold=self.reconstruction_threshold,
            clipping_range=self.clipping_range,
            quantization_range=self.quantization_range,
            modulus_range=self.modulus_range,
            max_weight=self.max_weight or max_weight,
            allow_low_threshold=self.allow_low_threshold,
        )
