"""`fedrobust deploy`, `split`, `credentials`: input problems end with exit 2 before any
process starts. The CLI runs in-process here (no interpreter start-up per call)."""

from __future__ import annotations

import numpy as np

from tests.cli import cli

SCENARIO = """\
name: edge-cli
data:
  dataset: digits
  partition: {kind: iid, num_clients: 2}
model: {name: mlp, hidden: [16]}
train: {rounds: 1}
"""


def test_split_writes_one_file_per_client(tmp_path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    code, out, err = cli(capsys, "split", str(path), "--out", str(tmp_path / "dev"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == ["client-0.npz", "client-1.npz"]
    with np.load(tmp_path / "dev" / "client-1.npz") as archive:
        assert sorted(archive.files) == ["x", "x_val", "y", "y_val"]
    assert "client-1.npz  train" in out


def test_deploy_names_a_missing_device_file_and_starts_nothing(tmp_path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    (tmp_path / "dev").mkdir()
    np.savez(tmp_path / "dev" / "client-0.npz", x=np.zeros((5, 1, 8, 8)), y=np.zeros(5, int))
    code, _, err = cli(
        capsys, "deploy", str(path), "--out", str(tmp_path / "run"), "--data-dir",
        str(tmp_path / "dev"),
    )  # fmt: skip
    assert code == 2
    assert err.startswith("error: ") and "client-1.npz: no such file" in err
    assert not (tmp_path / "run" / "deploy").exists()


def test_deploy_names_a_device_file_of_the_wrong_shape(tmp_path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    (tmp_path / "dev").mkdir()
    for i in range(2):
        np.savez(tmp_path / "dev" / f"client-{i}.npz", x=np.zeros((5, 28, 28)), y=np.zeros(5, int))
    code, _, err = cli(capsys, "deploy", str(path), "--data-dir", str(tmp_path / "dev"))
    assert code == 2
    assert "client-0.npz: x samples have shape (28, 28)" in err
    assert "expects (1, 8, 8)" in err


def test_deploy_refuses_a_bad_scenario_with_the_field(tmp_path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("num_clients: 2", "num_clients: 0"))
    code, _, err = cli(capsys, "deploy", str(path))
    assert code == 2 and "data.partition.num_clients" in err


def test_credentials_writes_certs_keys_and_a_flwr_connection(tmp_path, capsys) -> None:
    code, _, err = cli(
        capsys, "credentials", "--dir", str(tmp_path / "d"), "--nodes", "2",
        "--host", "10.0.0.5", "--host", "server.lan", "--port", "9443",
    )  # fmt: skip
    assert code == 0, err
    d = tmp_path / "d"
    for name in ("certs/ca.crt", "certs/superlink.crt", "certs/superlink.key",
                 "keys/node-0", "keys/node-0.pub", "keys/node-1.pub"):  # fmt: skip
        assert (d / name).is_file(), name
    config = (d / "flwr" / "config.toml").read_text()
    assert 'address = "10.0.0.5:9443"' in config
    assert f'root-certificates = "{d / "certs" / "ca.crt"}"' in config
    code, _, err = cli(capsys, "credentials", "--dir", str(d), "--nodes", "0", "--host", "x")
    assert code == 2 and "--nodes" in err
