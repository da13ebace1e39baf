"""A ClientApp process imports only what its message needs: Flower starts one per message.

Each check runs in a fresh interpreter and reads its ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("opacus", "sklearn", "scipy", "flwr_datasets", "datasets", "torchattacks",
         "matplotlib", "onnx", "pandas", "captum", "optuna")  # fmt: skip

#: A plain (non-DP) round-1 ``train`` message on the digits, handled in this process.
PLAIN_ROUND = """
import time
from flwr.app import ArrayRecord, Context, Message, Metadata, RecordDict
from fedrobust.apps.clients.client_app import train
from fedrobust.models.build import build_model
from fedrobust.models.registry import InputSpec
from fedrobust.recipe import recipe_config
from fedrobust.scenario import parse_scenario

sc = parse_scenario({
    "name": "plain", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}},
    "model": {"name": "mlp", "hidden": [16]}, "train": {"batch_size": 32},
})
spec = InputSpec(shape=(1, 8, 8), num_classes=10)
config = recipe_config(sc, spec)
config["server-round"] = 1
md = Metadata(run_id=1, message_id="m1", src_node_id=0, dst_node_id=1, reply_to_message_id="",
              group_id="1", created_at=time.time(), ttl=60, message_type="train")
content = RecordDict({"arrays": ArrayRecord(build_model(sc.model, spec).state_dict()),
                      "config": config})
context = Context(run_id=1, node_id=1, node_config={"partition-id": 0, "num-partitions": 3},
                  state=RecordDict(), run_config={})
reply = train(Message(metadata=md, content=content), context)
assert reply.content["metrics"]["num-examples"] > 0
"""


def loaded_after(code: str, cache: Path | None = None) -> set[str]:
    """The heavy packages in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    report = f"import json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if cache is not None:
        env["FEDROBUST_CACHE_DIR"] = str(cache)
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_client_app_loads_no_heavy_package() -> None:
    assert loaded_after("import fedrobust.apps.clients.client_app") == set()


def test_a_plain_round_never_loads_opacus_and_with_its_partition_cached_nothing_heavy(
    tmp_path: Path,
) -> None:
    cold = loaded_after(PLAIN_ROUND, cache=tmp_path)  # builds the federation (sklearn, ...)
    assert not cold & {"opacus", "torchattacks", "onnx"}
    assert list(tmp_path.glob("partition-*.npz"))
    warm = loaded_after(PLAIN_ROUND, cache=tmp_path)  # a later message's process
    assert warm == set()
