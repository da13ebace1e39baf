"""The in-process Grid the tests run loop logic on (:mod:`fedrobust.apps.inprocess`)."""

from __future__ import annotations

from fedrobust.apps.inprocess import NUM_CLIENTS, InProcessGrid

__all__ = ["NUM_CLIENTS", "InProcessGrid"]
