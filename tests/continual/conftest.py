"""Shared fixtures for the continual-learning tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedrobust.train.threads import torch_threads


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run torch on one thread: tiny models on a busy machine train far faster so."""
    with torch_threads(1):
        yield
