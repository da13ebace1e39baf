"""Optional packages: each missing one is one error naming its extra; an edge device's base
install (no extra at all) trains; nothing optional is imported at a module's top level."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedrobust.errors import FedrobustError
from fedrobust.extras import EXTRA_OF, install_hint, missing_modules, require

ROOT = Path(__file__).resolve().parents[1]
#: Every optional module blocked: what `pip install fedrobust` (the base) leaves out.
BLOCK = "import sys\nfor _m in {mods!r}: sys.modules[_m] = None\n".format(
    mods=sorted(EXTRA_OF) + ["torch.utils.tensorboard"]
)


def run_blocked(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter in which no optional package can be imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def cli_blocked(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    code = f"from fedrobust.cli import main\nsys.exit(main({list(args)!r}))"
    return run_blocked(code, cwd)


def test_require_names_the_field_the_modules_and_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("fedrobust.extras.find_spec", lambda name: None)  # nothing installed
    with pytest.raises(FedrobustError) as err:
        require("output.mlflow", "mlflow")
    assert err.value.where == "output.mlflow"
    assert "mlflow" in err.value.what
    assert "pip install 'fedrobust[tracking]'" in err.value.what


def test_require_passes_when_the_modules_are_installed() -> None:
    require("data.dataset", "numpy", "yaml")  # installed: no error
    assert missing_modules("numpy", "yaml") == []


def test_the_attacks_extra_says_how_torchattacks_itself_installs() -> None:
    assert "--no-deps torchattacks" in install_hint("attacks")


def test_every_extra_named_exists_in_pyproject() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(EXTRA_OF.values()) <= set(extras)
    bundled = extras["all"][0]
    assert all(extra in bundled for extra in set(EXTRA_OF.values()))


def _top_level_imports(tree: ast.Module) -> list[str]:
    """Modules imported by statements run at import time (not in functions, not under
    ``if TYPE_CHECKING``)."""
    names: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return names


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in ("clients", "server"):
        parts = ["fedrobust", "apps", *parts]
    return ".".join(p for p in parts if p != "__init__")


#: What must import on a base install: the CLI, the Flower apps, the scenario, the API.
ENTRY_POINTS = (
    "fedrobust", "fedrobust.cli", "fedrobust.api", "fedrobust.scenario", "fedrobust.bundled",
    "fedrobust.apps.clients.client_app", "fedrobust.apps.clients.edge_node",
    "fedrobust.apps.server.server_app", "fedrobust.apps.server.loop",
)  # fmt: skip


def test_modules_that_need_an_extra_are_imported_only_where_used() -> None:
    """A module importing an optional package at its top is itself imported only inside
    the functions that use it: no entry point reaches one at import time."""
    optional = set(EXTRA_OF) | {"torch.utils.tensorboard"}
    imports = {
        _module_name(path): _top_level_imports(ast.parse(path.read_text(encoding="utf-8")))
        for folder in ("fedrobust", "clients", "server")
        for path in (ROOT / folder).rglob("*.py")
    }
    needing = {m for m, names in imports.items() if any(n.split(".")[0] in optional
                                                      for n in names)}  # fmt: skip
    while True:  # and every module that imports one of those at its top, transitively
        more = {m for m, names in imports.items() if m not in needing
                and any(n in needing or n.rsplit(".", 1)[0] in needing for n in names)}  # fmt: skip
        if not more:
            break
        needing |= more
    assert "fedrobust.report.plots" in needing  # the scan sees what it should
    assert needing.isdisjoint(ENTRY_POINTS), sorted(needing & set(ENTRY_POINTS))


DEVICE_ROUND = """
import time
import numpy as np
from flwr.app import ArrayRecord, Context, Message, Metadata, RecordDict
from fedrobust.apps.clients.client_app import train
from fedrobust.models.build import build_model
from fedrobust.models.registry import InputSpec
from fedrobust.recipe import recipe_config
from fedrobust.scenario import parse_scenario

sc = parse_scenario({
    "name": "edge", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
    "model": {"name": "cnn"}, "train": {"batch_size": 16},
    "privacy": {"dp": {"mode": "sample", "noise_multiplier": 1.0, "max_grad_norm": 1.0}},
})
spec = InputSpec(shape=(1, 8, 8), num_classes=10)
config = recipe_config(sc, spec)
config.update({"server-round": 1, "dp-noise-multiplier": 1.0, "dp-history": "[]"})
md = Metadata(run_id=1, message_id="m1", src_node_id=0, dst_node_id=1, reply_to_message_id="",
              group_id="1", created_at=time.time(), ttl=60, message_type="train")
content = RecordDict({"arrays": ArrayRecord(build_model(sc.model, spec).state_dict()),
                      "config": config})
context = Context(run_id=1, node_id=1, state=RecordDict(), run_config={},
                  node_config={"partition-id": 0, "num-partitions": 2, "data-path": DATA})
reply = train(Message(metadata=md, content=content), context)
assert not reply.has_error(), reply.error
metrics = reply.content["metrics"]
assert metrics["num-examples"] > 0 and np.isfinite(metrics["train-loss"]), dict(metrics)
print("noise", metrics["dp-noise-multiplier"])
"""


def test_a_base_install_trains_a_dp_sgd_round_from_the_devices_own_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "device.npz"
    np.savez(data, x=rng.random((60, 1, 8, 8), dtype=np.float32), y=np.arange(60) % 10)
    done = run_blocked(f"DATA = {str(data)!r}\n" + DEVICE_ROUND)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "noise 1.0" in done.stdout


def test_the_cli_without_extras_prints_its_version_lists_and_validates_scenarios() -> None:
    version = cli_blocked("--version")
    assert version.returncode == 0 and version.stdout.startswith("fedrobust "), version.stderr
    listed = cli_blocked("scenarios")
    assert listed.returncode == 0 and "quickstart" in listed.stdout, listed.stderr
    valid = cli_blocked("validate", "quickstart")
    assert valid.returncode == 0, valid.stderr[-2000:]


@pytest.mark.parametrize(
    ("args", "where", "extra"),
    [
        (("run", "quickstart", "--rounds", "1"), "a Flower simulation", "simulation"),
        (("tune", "tune_lr", "--trials", "1"), "fedrobust tune", "tune"),
    ],
)
def test_a_command_without_its_extra_exits_2_naming_it(
    args: tuple[str, ...], where: str, extra: str, tmp_path: Path
) -> None:
    done = cli_blocked(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert where in done.stderr and f"fedrobust[{extra}]" in done.stderr
    assert "Traceback" not in done.stderr
