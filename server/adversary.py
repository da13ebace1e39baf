"""The colluding attacker, simulated on the server (``attack.kind``: alie, ipm, minmax).

Not a defence and not part of aggregation: it stands in for attackers who share what
the honest clients sent this round. It rewrites the malicious clients' replies before
any defence or strategy sees them; the malicious ClientApps trained honestly.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict

from fedrobust.robust.collusion import colluding_update
from fedrobust.robust.malicious import attacking
from fedrobust.robust.updates import apply_delta, flat_delta
from fedrobust.scenario import COLLUDING_ATTACKS, Scenario


def collude(
    scenario: Scenario,
    rnd: int,
    replies: list[Message],
    global_arrays: ArrayRecord,
    partition_of: dict[int, int],
) -> list[Message]:
    """``replies`` with every attacking client's weights replaced by the colluding update.

    Nothing changes before ``attack.start_round``, for non-colluding attacks, or when
    fewer than two honest clients replied (the attack needs their spread).
    """
    if scenario.attack.kind not in COLLUDING_ATTACKS:
        return replies
    bad = [m for m in replies if attacking(scenario, partition_of[m.metadata.src_node_id], rnd)]
    bad_ids = {id(m) for m in bad}
    good = [m for m in replies if id(m) not in bad_ids]
    if not bad or len(good) < 2:
        return replies
    benign = np.stack([flat_delta(_arrays(m), global_arrays) for m in good])
    delta = colluding_update(scenario.attack, benign, len(replies), len(bad))
    forged = apply_delta(global_arrays, delta)
    for msg in bad:
        content = msg.content
        msg.content = RecordDict({"arrays": forged, "metrics": content.metric_records["metrics"]})
    return replies


def _arrays(msg: Message) -> ArrayRecord:
    return msg.content.array_records["arrays"]
