"""Data: sources, partitioning, per-client transforms."""

from fedrobust.data.federated import ClientData, Federation, build_federation
from fedrobust.data.sources import Source, load_source

__all__ = ["ClientData", "Federation", "Source", "build_federation", "load_source"]
