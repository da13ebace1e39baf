"""fedrobust's Flower ClientApp (message API): entry points that wire the local round.

The client holds no copy of the scenario: each message carries the round's recipe (the
validated scenario as JSON, and the data's input spec) in its ConfigRecord. The node's
identity and data come from ``node_config``:

- ``partition-id``: this client's index in the federation, 0..num_clients-1 (required);
- ``num-partitions``: checked against the scenario's ``data.partition.num_clients``;
- ``data-path``: an npz file of the device's own data (see ``fedrobust.data.device``);
  without it the client trains on its simulation-style partition of the scenario's
  ``data`` section, built with the scenario's seed;
- ``cache-dir``: where that partition is cached between messages (Flower starts a
  process per message; default ``$FEDROBUST_CACHE_DIR``, else the user's cache
  directory; ``off`` turns it off; see ``fedrobust.data.cache``).

What a round does lives in :func:`fedrobust.federation.local_round.local_round` and the
features' client hooks (:mod:`fedrobust.federation.registry`); both handlers below call
it: ``train`` for a plain round, ``train.secagg`` for SecAgg+'s training stage;
``evaluate`` measures a model on the client's local test split.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, compute_clip_model_update

from fedrobust.federation.client_hooks import Refusal
from fedrobust.federation.local_round import (
    LocalResult,
    load_client_data,
    local_evaluation,
    local_round,
    partition_id,
)
from fedrobust.privacy.client_dp import CLIENT_CLIPPING, UNIFORM_WEIGHT, client_dp_mod
from fedrobust.recipe import read_recipe
from fedrobust.robust.updates import float_keys
from fedrobust.secagg.config import Stage
from fedrobust.secagg.records import add_part, read_parts
from fedrobust.secagg.session import ClientSessions

app = ClientApp(mods=[client_dp_mod])


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server who this node is (and, given a recipe, how much data it holds)."""
    info = ConfigRecord({"partition-id": partition_id(context)})
    config = msg.content.config_records.get("config")
    if config is not None and "scenario" in config:
        scenario, spec = read_recipe(config)
        info["num-train"] = len(load_client_data(scenario, spec, context).y_train)
    return Message(content=RecordDict({"info": info}), reply_to=msg)


def refusal(msg: Message, refused: Refusal) -> Message:
    """A reply that declines the round, with the reason the server counts."""
    status = ConfigRecord({"refused": refused.reason, **refused.figures})
    return Message(content=RecordDict({"status": status}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on local data with the round's recipe."""
    result = local_round(msg.content, context)
    if result.refusal is not None:
        return refusal(msg, result.refusal)
    return Message(content=result.content(), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Measure the received global model, and this client's personal model, on its local
    test split (``data.local_test_fraction``)."""
    metrics = local_evaluation(msg.content, context)
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


@app.train("secagg")
def secagg(msg: Message, context: Context) -> Message:
    """SecAgg+ stages (``privacy.secure_aggregation``), one or two protocol instances per
    message (a pipelined round: this round's stage and the next round's).

    setup and share_keys exchange keys and Shamir shares; collect_masked_vectors carries
    the round's recipe: the client runs the same local round as :func:`train`, takes its
    update (weights minus global weights; clipped to the round's norm under client-level
    DP) and sends it only masked, with its training metrics (a hook's own records are
    not sent: they would leave the client unmasked); unmask sends the shares that remove
    the masks. Each instance's state lives in ``context.state`` between messages
    (:class:`fedrobust.secagg.session.ClientSessions`).
    """
    parts = read_parts(msg.content)
    sessions = ClientSessions(context.state, context.node_id)
    config = msg.content.config_records.get("config")
    # every part may run, or none does: a replay or a bad part trains nothing
    sessions.check(parts, None if config is None else config.get("server-round"))
    sessions.forget_before(min(parts))
    content = RecordDict()
    for rnd, stage_msg in parts.items():
        if stage_msg["stage"] != Stage.COLLECT_MASKED_VECTORS:
            add_part(content, rnd, sessions.step(rnd, stage_msg))
            continue
        result = local_round(msg.content, context, secure=True)
        if result.refusal is not None:  # refused (budget, policy): drops out here
            return refusal(msg, result.refusal)
        update, weight = _secagg_update(msg, result)
        add_part(content, rnd, sessions.step(rnd, stage_msg, update, weight))
        content["metrics"] = result.metrics
    sessions.save()
    return Message(content=content, reply_to=msg)


def _secagg_update(msg: Message, result: LocalResult) -> tuple[list[np.ndarray], float]:
    """The update to mask and its weight, from a local round's weights and metrics."""
    assert result.metrics is not None
    global_arrays = msg.content.array_records["arrays"]
    keys = float_keys(global_arrays)
    new = [result.weights[k].numpy().astype(np.float64) for k in keys]
    old = [global_arrays[k].numpy().astype(np.float64) for k in keys]
    config = msg.content.config_records["config"]
    if config.get(CLIENT_CLIPPING) == "fixed":  # what fixedclipping_mod does to a reply
        compute_clip_model_update(new, old, float(config[KEY_CLIPPING_NORM]))  # type: ignore[arg-type]
    update = [n - o for n, o in zip(new, old, strict=True)]
    metrics = result.metrics
    weight = 1.0 if UNIFORM_WEIGHT in metrics else float(metrics["num-examples"])  # type: ignore[arg-type]
    return update, weight
