"""How a round's training messages reach the clients and come back: plainly, or through
SecAgg+. Both return a :class:`RoundOutcome` screened by the same function."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid

from fedrobust.federation.exchange import send_and_receive
from fedrobust.federation.registry import client_hooks
from fedrobust.federation.screening import STRATEGY_KEYS, ReplyContract, screen_replies
from fedrobust.federation.server_hooks import RoundOutcome
from fedrobust.scenario import Scenario
from fedrobust.secagg.transport import SecAggTransport
from fedrobust.strategy.registry import reply_contract

log = logging.getLogger("fedrobust.server")
Transport = Callable[[Grid, int, list[Message], ArrayRecord, dict[int, int]], RoundOutcome]


def build_transport(
    scenario: Scenario, sizes: dict[int, int], nodes: Mapping[int, int] | None = None
) -> Transport:
    """SecAgg+ when ``privacy.secure_aggregation`` is on, else plain rounds.

    ``sizes`` (training examples per client) bound SecAgg+'s weights: example counts,
    or 1 each under client-level DP. ``nodes`` (partition id -> node id, as the loop
    keeps it) lets SecAgg+ prepare the next round's clients during this round. A plain
    round's replies must also carry what the strategy reads (its
    :class:`~fedrobust.federation.screening.ReplyContract`).
    """
    if not scenario.secagg_enabled():
        contract = reply_contract(scenario.strategy.name)
        records = STRATEGY_KEYS.union(
            contract.records, *(h.reply_records for h in client_hooks(scenario))
        )
        return lambda grid, rnd, messages, arrays, sampled: plain_round(
            grid, messages, arrays, sampled, scenario.simulation.timeout, sizes, records, rnd,
            contract,
        )  # fmt: skip
    max_weight = 1.0 if scenario.privacy.dp.mode == "client" else secagg_max_weight(sizes)
    return SecAggTransport(scenario, max_weight, nodes)


def secagg_max_weight(sizes: dict[int, int], spread: float = 100.0) -> float:
    """The largest weight SecAgg+ must encode: the largest training set the clients
    declared at discovery, ignoring declarations above ``spread`` times the median (one
    client claiming 10^12 examples would make the modulus too small for every round; its
    real weight above this bound then fails only the rounds it contributes to).
    ``privacy.secure_aggregation.max_weight`` overrides it."""
    if not sizes:
        return 1.0
    values = sorted(sizes.values())
    bound = spread * values[len(values) // 2]
    kept = [v for v in values if v <= bound]
    ignored = sorted(pid for pid, v in sizes.items() if v > bound)
    if ignored:
        log.warning("SecAgg+ max weight ignores the sizes clients %s declared", ignored)
    return float(max(kept))


def plain_round(
    grid: Grid,
    messages: list[Message],
    arrays: ArrayRecord,
    sampled: dict[int, int],
    timeout: float,
    caps: dict[int, int] | None = None,
    records: frozenset[str] = STRATEGY_KEYS,
    rnd: int | None = None,
    contract: ReplyContract = ReplyContract(),
) -> RoundOutcome:
    """Send the training messages, wait up to ``timeout`` seconds, screen the replies
    (``caps``: each client's declared training examples; ``records``: those a reply
    may hold; ``rnd``: the round each reply must echo; ``contract``: what the strategy
    reads of each)."""
    replies = send_and_receive(grid, messages, timeout)
    accepted, dropped, refused = screen_replies(
        replies, arrays, sampled, sent=messages, caps=caps, records=records, rnd=rnd,
        contract=contract,
    )  # fmt: skip
    return RoundOutcome(
        replies=accepted, contributors=accepted, trained=accepted, dropped=dropped,
        refused=refused,
    )  # fmt: skip
