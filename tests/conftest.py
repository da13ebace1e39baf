"""Fixtures shared by the tests: Flower identities for in-process server messages, a
temporary partition cache."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flwr.supercore.task_identity import TaskIdentity

from fedrobust.data.cache import CACHE_ENV


@pytest.fixture
def server_identity() -> Iterator[None]:
    """The run, node and task ids a Message needs, as the ServerApp process has them."""
    old = TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = old


@pytest.fixture(autouse=True, scope="session")
def partition_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Client partitions cached by in-process rounds go to a temporary directory, not the
    user's cache (``fedrobust.data.cache``)."""
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("partition-cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old
