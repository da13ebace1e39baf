"""A device owner's privacy policy, set in the SuperNode's ``node_config``.

The server chooses the DP mode, sigma, the budget and SecAgg+; a device need not trust
it. These ``node_config`` keys let the device's owner set a floor the server cannot
lower; the ClientApp refuses (reason ``policy``) any round's instructions below it:

- ``min-noise-multiplier``: DP-SGD with at least this sigma on every round (a round
  without DP-SGD is refused);
- ``max-epsilon``: the client's own ledger may not pass this epsilon (at the
  scenario's delta, with its own accountant);
- ``require-secagg``: ``true`` refuses any round whose update would leave the device
  unmasked (a plain ``train`` message instead of SecAgg+).

Example: ``--node-config "partition-id=0 num-partitions=3 max-epsilon=3.0
require-secagg=true"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KEYS = ("min-noise-multiplier", "max-epsilon", "require-secagg")


@dataclass(frozen=True)
class ClientPolicy:
    """What the device's owner requires of every round (``None``: no requirement)."""

    min_noise_multiplier: float | None = None
    max_epsilon: float | None = None
    require_secagg: bool = False

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any]) -> ClientPolicy:
        """Read the policy keys; a malformed value raises ``ValueError`` naming the key."""
        return cls(
            min_noise_multiplier=_positive(node_config, "min-noise-multiplier"),
            max_epsilon=_positive(node_config, "max-epsilon"),
            require_secagg=_flag(node_config, "require-secagg"),
        )

    def needs_dp_sgd(self) -> bool:
        """Whether the policy asks for DP-SGD on the device."""
        return self.min_noise_multiplier is not None or self.max_epsilon is not None


def _positive(config: Mapping[str, Any], key: str) -> float | None:
    if key not in config:
        return None
    try:
        value = float(config[key])
    except (TypeError, ValueError):
        raise ValueError(f"node_config {key}={config[key]!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"node_config {key}={config[key]!r} must be above 0")
    return value


def _flag(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"node_config {key}={value!r} is not true or false")
