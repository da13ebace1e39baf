"""fedrobust: privacy-preserving and robust federated learning on Flower.

``fedrobust.run``, ``fedrobust.load_run``, ``fedrobust.validate`` and ``RunResult`` are
the Python API (:mod:`fedrobust.api`); they load on first use, so importing the package
(as every ClientApp process does) stays light.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

__version__ = "0.1.0"
__all__ = ["RunResult", "load_run", "run", "validate"]


def versions() -> dict[str, str]:
    """fedrobust's version and those of what a run depends on (metrics.json keeps them)."""
    found = {"fedrobust": __version__}
    for name in ("flwr", "torch", "opacus"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    found["python"] = platform.python_version()
    return found


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fedrobust import api

        return getattr(api, name)
    raise AttributeError(f"module 'fedrobust' has no attribute {name!r}")
