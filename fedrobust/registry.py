"""A named registry (Opacus-style ``register_*`` / ``create_*``) that fails loudly.

Models, losses, strategies and defences each keep one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fedrobust.errors import FedrobustError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories.

    Parameters
    ----------
    kind : str
        What is registered, for messages ("model", "loss").
    field : str
        The scenario field that names one, for errors ("model.name").
    """

    def __init__(self, kind: str, field: str) -> None:
        self.kind = kind
        self.field = field
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering a factory under ``name``; a name is taken only once."""

        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = item
            return item

        return decorator

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def get(self, name: str) -> T:
        """The factory registered as ``name``; an unknown name lists the known ones."""
        if name not in self._items:
            known = ", ".join(self.names())
            raise FedrobustError(self.field, f"unknown {self.kind} '{name}'; known: {known}")
        return self._items[name]
