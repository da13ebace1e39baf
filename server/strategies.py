"""Re-export: the strategy builders live in :mod:`fedrobust.strategy.registry`."""

from fedrobust.strategy.registry import (
    base_strategy,
    build_strategy,
    load_strategy_state,
    strategy_state,
)

__all__ = ["base_strategy", "build_strategy", "load_strategy_state", "strategy_state"]
