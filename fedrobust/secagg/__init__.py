"""SecAgg+ secure aggregation (Bell et al. 2020), transport-free: X25519, AES-GCM, our own Shamir.

The server learns only the sum of the clients' clipped, weighted, quantised updates (and of their
weights and clip counts); clients that drop after sharing their keys are recovered from Shamir
shares. Messages are plain dicts of ints, floats, bytes, lists and numpy arrays; moving them is
the caller's job. See :mod:`fedrobust.secagg.config` for the encoding and its error bounds, and
for the ``privacy.secure_aggregation`` section.

Names load on first use (PEP 562), so importing a submodule such as ``config`` does not pull in
the heavy ones, nor can they, importing :mod:`fedrobust.scenario`, cycle back into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrobust.lazy import lazy_getattr

if TYPE_CHECKING:
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

_EXPORTS = {
    "SecAggClient": "fedrobust.secagg.client",
    "ErrorBounds": "fedrobust.secagg.config",
    "SecAggParams": "fedrobust.secagg.config",
    "Stage": "fedrobust.secagg.config",
    "error_bounds": "fedrobust.secagg.config",
    "resolve_params": "fedrobust.secagg.config",
    "decode_sum": "fedrobust.secagg.encoding",
    "encode_update": "fedrobust.secagg.encoding",
    "quantize_weight": "fedrobust.secagg.encoding",
    "share_groups": "fedrobust.secagg.graph",
    "SecAggFailure": "fedrobust.secagg.server",
    "SecAggResult": "fedrobust.secagg.server",
    "SecAggServer": "fedrobust.secagg.server",
}

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
