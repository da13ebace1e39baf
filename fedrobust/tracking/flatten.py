"""A round of metrics.json as the flat, numeric series trackers plot.

One rule for every tracker: each finite number at any depth of the round's row is a
scalar named by its path, nested keys and list positions joined with ``/``
(``robust_accuracy/pgd@0.1``, ``secure_aggregation/contributors``, ``task_accuracy/0``).
Booleans, strings and ``None`` are no figures; ``round`` is the step; the per-client
figures under ``clients`` are series (histograms), not scalars; lists of client ids are
no figures either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

#: Keys of a round's row that are not scalars: the step, and the per-client figures.
SKIPPED = frozenset({"round", "clients"})
#: Lists of client ids (attackers, rejoined clients, the defence's choices): no figures.
ID_LISTS = frozenset({"malicious", "rejoined", "flagged", "selected"})
#: The client's partition id in a per-client row: a name, not a figure.
CLIENT_ID = "client"


def flatten_figures(row: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one round's row (see the module's rule).

    Parameters
    ----------
    row : Mapping
        One entry of metrics.json's ``rounds`` (or its ``initial``).

    Returns
    -------
    dict[str, float]
        Path -> value, in the row's order.
    """
    scalars: dict[str, float] = {}
    for key, value in row.items():
        if key not in SKIPPED:
            _add(scalars, str(key), value)
    return scalars


def _add(scalars: dict[str, float], path: str, value: Any) -> None:
    """Add ``value``'s finite numbers to ``scalars`` under ``path``."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, Real):
        number = float(value)
        if math.isfinite(number):
            scalars[path] = number
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _add(scalars, f"{path}/{key}", item)
    elif isinstance(value, Sequence) and path.rsplit("/", 1)[-1] not in ID_LISTS:
        for index, item in enumerate(value):
            _add(scalars, f"{path}/{index}", item)


def client_series(clients: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Each per-client figure of a round, over the clients that report it.

    Parameters
    ----------
    clients : Sequence of Mapping
        A round's ``clients`` rows (``client``, ``num_examples``, ``train_loss``, ...).

    Returns
    -------
    dict[str, list[float]]
        Figure -> its finite values (clients without it, or with NaN, left out); figures
        no client reports are absent.
    """
    series: dict[str, list[float]] = {}
    for row in clients:
        for key, value in row.items():
            if key == CLIENT_ID or isinstance(value, bool) or not isinstance(value, Real):
                continue
            if math.isfinite(float(value)):
                series.setdefault(key, []).append(float(value))
    return series
