"""How a round's training messages reach the clients and come back: plainly, or through
SecAgg+. Both return a :class:`RoundOutcome` screened by the same function."""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid

from fedrobust.federation.registry import client_hooks
from fedrobust.federation.screening import STRATEGY_KEYS, screen_replies
from fedrobust.federation.server_hooks import RoundOutcome
from fedrobust.scenario import Scenario
from fedrobust.secagg.transport import secagg_round

Transport = Callable[[Grid, int, list[Message], ArrayRecord, dict[int, int]], RoundOutcome]


def build_transport(scenario: Scenario, sizes: dict[int, int]) -> Transport:
    """SecAgg+ when ``privacy.secure_aggregation`` is on, else plain rounds.

    ``sizes`` (training examples per client) bound SecAgg+'s weights: example counts,
    or 1 each under client-level DP.
    """
    if not scenario.secagg_enabled():
        records = STRATEGY_KEYS.union(*(h.reply_records for h in client_hooks(scenario)))
        return lambda grid, rnd, messages, arrays, sampled: plain_round(
            grid, messages, arrays, sampled, scenario.simulation.timeout, sizes, records
        )
    max_weight = 1.0 if scenario.privacy.dp.mode == "client" else max(sizes.values(), default=1)
    return lambda grid, rnd, messages, arrays, sampled: secagg_round(
        grid, scenario, rnd, messages, arrays, max_weight, sampled
    )


def plain_round(
    grid: Grid,
    messages: list[Message],
    arrays: ArrayRecord,
    sampled: dict[int, int],
    timeout: float,
    caps: dict[int, int] | None = None,
    records: frozenset[str] = STRATEGY_KEYS,
) -> RoundOutcome:
    """Send the training messages, wait up to ``timeout`` seconds, screen the replies
    (``caps``: each client's declared training examples; ``records``: those a reply
    may hold)."""
    replies = grid.send_and_receive(messages, timeout=timeout)
    accepted, dropped, refused = screen_replies(
        replies, arrays, sampled, sent=messages, caps=caps, records=records
    )
    return RoundOutcome(
        replies=accepted, contributors=accepted, trained=accepted, dropped=dropped,
        refused=refused,
    )  # fmt: skip
