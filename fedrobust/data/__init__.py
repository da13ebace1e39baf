"""Data: sources, partitioning, per-client transforms; the ``data`` section in ``config``.

Names load on first use (PEP 562), so importing a submodule such as ``config`` does not pull in
the heavy ones, nor can they, importing :mod:`fedrobust.scenario`, cycle back into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrobust.lazy import lazy_getattr

if TYPE_CHECKING:
    from fedrobust.data.federated import ClientData, Federation, build_federation
    from fedrobust.data.sources import Source, load_source

_EXPORTS = {
    "ClientData": "fedrobust.data.federated",
    "Federation": "fedrobust.data.federated",
    "build_federation": "fedrobust.data.federated",
    "Source": "fedrobust.data.sources",
    "load_source": "fedrobust.data.sources",
}

__all__ = [
    "ClientData",
    "Federation",
    "Source",
    "build_federation",
    "load_source",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
