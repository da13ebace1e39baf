"""Data: sources, partitioning, per-client transforms; the ``data`` section in ``config``.

Names load on first use (PEP 562), so importing a submodule such as ``config`` does not pull in
the heavy ones, nor can they, importing :mod:`fedrobust.scenario`, cycle back into it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
