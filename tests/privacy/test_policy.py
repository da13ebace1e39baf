"""A device owner's privacy policy: the ClientApp refuses instructions below it, and the
server's copy of the ledger can add rounds, never replace the client's own."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fedrobust.apps.clients.client_app import train
from flwr.app import ArrayRecord, Context, Message, MessageType, Metadata, RecordDict

from fedrobust.data import build_federation
from fedrobust.models.build import build_model
from fedrobust.privacy.client import LEDGER_KEY, ledger_record
from fedrobust.privacy.ledger import LedgerEntry
from fedrobust.privacy.policy import ClientPolicy
from fedrobust.recipe import recipe_config
from fedrobust.scenario import Scenario, parse_scenario


def scenario(dp: dict | None = None) -> Scenario:
    return parse_scenario(
        {
            "name": "policy",
            "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
            "model": {"name": "mlp", "hidden": [8]},
            "train": {"batch_size": 64, "rounds": 5},
            "privacy": {"dp": dp or {"mode": "none"}},
        }
    )


def message(sc: Scenario, rnd: int = 1, **extra: object) -> Message:
    spec = build_federation(sc.data, sc.seed).spec
    config = recipe_config(sc, spec)
    config["server-round"] = rnd
    for key, value in extra.items():
        config[key] = value  # type: ignore[assignment]
    content = RecordDict(
        {"arrays": ArrayRecord(build_model(sc.model, spec).state_dict()), "config": config}
    )
    md = Metadata(
        run_id=1, message_id="m", src_node_id=1, dst_node_id=100, reply_to_message_id="",
        group_id="1", created_at=time.time(), ttl=600, message_type=MessageType.TRAIN,
    )  # fmt: skip
    return Message(metadata=md, content=content)


def context(**policy: object) -> Context:
    node_config = {"partition-id": 0, "num-partitions": 3, **policy}
    return Context(run_id=1, node_id=100, node_config=node_config, state=RecordDict(),
                   run_config={})  # type: ignore[arg-type]  # fmt: skip


def refused(reply: Message) -> str | None:
    status = reply.content.config_records.get("status")
    return None if status is None else str(status["refused"])


def test_policy_keys_are_read_and_bad_values_name_the_key() -> None:
    policy = ClientPolicy.from_node_config(
        {"min-noise-multiplier": "1.5", "max-epsilon": 3, "require-secagg": "true"}
    )
    assert policy == ClientPolicy(1.5, 3.0, True)
    with pytest.raises(ValueError, match="max-epsilon"):
        ClientPolicy.from_node_config({"max-epsilon": "lots"})
    with pytest.raises(ValueError, match="require-secagg"):
        ClientPolicy.from_node_config({"require-secagg": "maybe"})


def test_a_round_below_the_owners_policy_is_refused() -> None:
    plain = scenario()
    assert refused(train(message(plain), context(**{"require-secagg": "true"}))) == "policy"
    assert refused(train(message(plain), context(**{"max-epsilon": 3.0}))) == "policy"  # no DP
    dp = scenario({"mode": "sample", "noise_multiplier": 0.8, "delta": 1e-3})
    low = message(dp, **{"dp-noise-multiplier": 0.8})
    assert refused(train(low, context(**{"min-noise-multiplier": 1.0}))) == "policy"
    assert refused(train(low, context(**{"max-epsilon": 0.01}))) == "policy"
    assert refused(train(low, context(**{"min-noise-multiplier": 0.5}))) is None  # trains


def test_the_servers_ledger_copy_adds_rounds_but_never_replaces_the_clients() -> None:
    dp = scenario({"mode": "sample", "noise_multiplier": 1.0, "delta": 1e-3})
    ctx = context()
    own = [LedgerEntry(1.0, 0.5, 4, 1)]
    ctx.state[LEDGER_KEY] = ledger_record(own)
    # a forged history: round 1 with huge noise (little spending), plus a round 2
    forged = [LedgerEntry(100.0, 0.5, 4, 1).to_dict(), LedgerEntry(1.0, 0.5, 4, 2).to_dict()]
    reply = train(message(dp, rnd=3, **{"dp-noise-multiplier": 1.0,
                                        "dp-history": json.dumps(forged)}), ctx)  # fmt: skip
    assert refused(reply) is None
    kept = json.loads(str(ctx.state.config_records[LEDGER_KEY]["entries"]))
    assert [(e["round"], e["noise_multiplier"]) for e in kept] == [(1, 1.0), (2, 1.0), (3, 1.0)]
    assert np.isfinite(reply.content.metric_records["metrics"]["epsilon"])
