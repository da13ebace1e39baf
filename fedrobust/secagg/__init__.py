"""SecAgg+ secure aggregation (Bell et al. 2020), transport-free, on Flower's crypto primitives.

The server learns only the sum of the clients' clipped, weighted, quantised updates (and of their
weights and clip counts); clients that drop after sharing their keys are recovered from Shamir
shares. Messages are plain dicts of ints, floats, bytes, lists and numpy arrays; moving them is
the caller's job. See :mod:`fedrobust.secagg.config` for the encoding and its error bounds.
"""

from fedrobust.secagg.client import SecAggClient
from fedrobust.secagg.config import (
    ErrorBounds,
    SecAggParams,
    Stage,
    error_bounds,
    resolve_params,
)
from fedrobust.secagg.encoding import decode_sum, encode_update, quantize_weight
from fedrobust.secagg.graph import share_groups
from fedrobust.secagg.server import SecAggFailure, SecAggResult, SecAggServer

__all__ = [
    "ErrorBounds",
    "SecAggClient",
    "SecAggFailure",
    "SecAggParams",
    "SecAggResult",
    "SecAggServer",
    "Stage",
    "decode_sum",
    "encode_update",
    "error_bounds",
    "quantize_weight",
    "resolve_params",
    "share_groups",
]
