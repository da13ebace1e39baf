"""The device-side starter: inputs checked first (exit 2), then Flower's SuperNode command."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
from fedrobust.apps.clients.edge_node import main

from fedrobust.deploy.pki import create_node_keys, create_server_cert


@pytest.fixture
def device(tmp_path):
    certs = create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    keys = create_node_keys(tmp_path / "keys", "node-0")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((4, 8, 8)), y=np.zeros(4, int))
    base = ["--superlink", "127.0.0.1:9093", "--root-certificates", str(certs.ca_cert),
            "--key", str(keys.private), "--partition-id", "1", "--num-partitions", "3",
            "--data-path", str(data)]  # fmt: skip
    return tmp_path, base


def test_dry_run_prints_an_authenticated_tls_supernode_command(device, capsys) -> None:
    tmp_path, base = device
    assert main([*base, "--port", "9200", "--dry-run"]) == 0
    args = shlex.split(capsys.readouterr().out)
    assert args[0].endswith("flower-supernode") and "--insecure" not in args
    assert args[args.index("--superlink") + 1] == "127.0.0.1:9093"
    assert args[args.index("--root-certificates") + 1].endswith("ca.crt")
    assert args[args.index("--auth-supernode-private-key") + 1].endswith("node-0")
    assert args[args.index("--port") + 1] == "9200"
    config = args[args.index("--node-config") + 1]
    assert config == f'partition-id=1 num-partitions=3 data-path="{tmp_path / "data.npz"}"'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--superlink", "nohost"), "--superlink: expected HOST:PORT"),
        (("--partition-id", "3"), "--partition-id: 3 outside 0..2"),
        (("--key", "/nonexistent/key"), "/nonexistent/key: no such file"),
        (("--root-certificates", "KEY"), "not a PEM certificate"),
        (("--key", "PUB"), "not an OpenSSH private key"),
        (("--data-path", "BAD"), "missing array(s) ['y']"),
    ],
)
def test_an_unusable_input_is_named_and_exits_2(device, capsys, change, message) -> None:
    tmp_path, base = device
    option, value = change
    stand_in = {
        "KEY": str(tmp_path / "keys" / "node-0"),
        "PUB": str(tmp_path / "keys" / "node-0.pub"),
        "BAD": str(tmp_path / "bad.npz"),
    }
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 8, 8)))
    args = list(base)
    args[args.index(option) + 1] = stand_in.get(value, value)
    assert main([*args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
