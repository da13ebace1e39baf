"""A TLS federation with authenticated SuperNodes, started on this machine.

What an operator does by hand across machines (README, "Edge deployment"), done here on
loopback so it can be tried and tested in one command:

1. credentials (``fedrobust.deploy.pki``) and a ``flwr`` connection named
   ``fedrobust`` in a private ``FLWR_HOME`` that trusts the CA;
2. ``flower-superlink`` with TLS and ``--enable-supernode-auth``;
3. ``flwr supernode register`` for each node's public key;
4. ``flower-supernode`` per node, with its private key, the CA and its ``node_config``;
5. ``flwr run APP fedrobust --stream``.

:class:`LocalFederation` owns every process it starts and stops them all on exit; its
:class:`~fedrobust.lifetime.Lifetime` kills them (SuperExec and apps included) when the
process that started them dies, even by SIGKILL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedrobust.apps import FLOWER_APP_DIR as APP_DIR
from fedrobust.data.cache import CACHE_ENV
from fedrobust.data.device import device_file
from fedrobust.deploy.pki import NodeKeys, ServerCerts, create_node_keys, create_server_cert
from fedrobust.launch import (
    BIN_DIR,
    RunFailed,
    RunWatch,
    flower_env,
    follow_flwr_run,
    free_port,
    stop_process,
    wait_healthy,
)
from fedrobust.lifetime import Lifetime, die_with_parent
from fedrobust.rundir import FLWR_LOG, LOGS_DIR, SUPERLINK_LOG, RunDir
from fedrobust.scenario import Scenario

CONNECTION = "fedrobust"
SUPEREXEC_POLL_ENV = "FLWR_SUPEREXEC_TASK_POLL_INTERVAL"
NodeConfig = Mapping[str, str | int]


@dataclass(frozen=True)
class Credentials:
    """Everything a TLS federation with node authentication needs, on disk.

    Parameters
    ----------
    certs : ServerCerts
        SuperLink certificate and key and a copy of the CA certificate (``DIR/certs``);
        the CA's key stays in ``DIR/ca`` (keep it off the SuperLink's host).
    nodes : list[NodeKeys]
        One OpenSSH key pair per SuperNode (``DIR/keys/node-<i>``).
    flwr_home : Path
        ``DIR/flwr``: its ``config.toml`` names the connection ``fedrobust``.
    address : str
        ``host:port`` SuperNodes and ``flwr`` dial.
    """

    certs: ServerCerts
    nodes: list[NodeKeys]
    flwr_home: Path
    address: str


def create_credentials(directory: Path, num_nodes: int, hosts: list[str], port: int) -> Credentials:
    """Create (or reuse) the CA, the SuperLink certificate, node keys and flwr config.

    Parameters
    ----------
    directory : Path
        Gets ``ca/`` (the CA's certificate and private key), ``certs/`` (the SuperLink's
        certificate and key, a copy of ``ca.crt``), ``keys/`` and ``flwr/config.toml``.
    num_nodes : int
        Key pairs ``keys/node-0`` .. ``keys/node-<num_nodes-1>``.
    hosts : list[str]
        Names and addresses of the SuperLink; the first is the one dialled.
    port : int
        The SuperLink's port (Fleet, Control and Runtime APIs share it).
    """
    directory = directory.resolve()
    certs = create_server_cert(directory / "certs", hosts, ca_dir=directory / "ca")
    nodes = [create_node_keys(directory / "keys", f"node-{i}") for i in range(num_nodes)]
    flwr_home = directory / "flwr"
    flwr_home.mkdir(parents=True, exist_ok=True)
    address = f"{hosts[0]}:{port}"
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
        f'address = "{address}"\nroot-certificates = "{certs.ca_cert}"\n',
        encoding="utf-8",
    )
    return Credentials(certs=certs, nodes=nodes, flwr_home=flwr_home, address=address)


def format_node_config(config: NodeConfig) -> str:
    """``--node-config`` text: strings quoted, numbers bare."""
    return " ".join(
        f"{key}={json.dumps(value) if isinstance(value, str) else value}"
        for key, value in config.items()
    )


def supernode_command(
    superlink: str,
    private_key: Path,
    node_config: NodeConfig,
    *,
    root_certificates: Path | None,
    port: int,
    max_retries: int | None = None,
) -> list[str]:
    """The ``flower-supernode`` command line of one authenticated TLS node.

    Parameters
    ----------
    superlink : str
        ``host:port`` of the SuperLink.
    private_key : Path
        The node's OpenSSH private key (its public key is registered).
    node_config : mapping
        ``partition-id``, ``num-partitions``, optional ``data-path``.
    root_certificates : Path, optional
        The CA certificate that signed the SuperLink's; None leaves it out (the node
        then trusts only the system's CAs).
    port : int
        The node's local ClientApp API port (one per SuperNode on a machine).
    max_retries : int, optional
        Connection attempts before giving up (default: Flower's, unlimited).
    """
    args = [
        str(BIN_DIR / "flower-supernode"),
        "--superlink", superlink,
        "--auth-supernode-private-key", str(private_key),
        "--node-config", format_node_config(node_config),
        "--port", str(port),
    ]  # fmt: skip
    if root_certificates is not None:
        args += ["--root-certificates", str(root_certificates)]
    if max_retries is not None:
        args += ["--max-retries", str(max_retries)]
    return args


class LocalFederation:
    """A SuperLink with TLS and node authentication plus SuperNodes, all on loopback.

    Parameters
    ----------
    directory : Path
        Credentials (kept between uses: nodes keep their identities) and logs.
    num_nodes : int
        Node key pairs to create.
    port : int, optional
        The SuperLink's port (default: a free one).
    """

    def __init__(self, directory: Path, num_nodes: int, port: int | None = None) -> None:
        self.directory = directory.resolve()
        self.logs = self.directory / LOGS_DIR
        self.logs.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.credentials = create_credentials(
            self.directory, num_nodes, ["127.0.0.1", "localhost"], self.port
        )
        self.lifetime = Lifetime()
        self.env = self.lifetime.env(flower_env(self.credentials.flwr_home))
        # each message's ClientApp process reads its partition here (fedrobust.data.cache)
        self.env[CACHE_ENV] = str(self.directory / "cache")
        # a node's SuperExec looks for a message to start a ClientApp for every 0.2 s
        # (Flower's default: 1 s, up to a second of each round on loopback)
        self.env[SUPEREXEC_POLL_ENV] = "0.2"
        self.superlink: subprocess.Popen[bytes] | None = None
        self.nodes: dict[int, subprocess.Popen[bytes]] = {}
        self._extra: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> LocalFederation:
        self.start_superlink()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _popen(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.logs / log_name).open("ab") as sink:
            return subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, env=self.env,
                cwd=self.directory, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip

    def start_superlink(self) -> None:
        """``flower-superlink`` with TLS and ``--enable-supernode-auth``; waits until healthy."""
        certs = self.credentials.certs
        self.superlink = self._popen(
            [str(BIN_DIR / "flower-superlink"),
             "--ssl-ca-certfile", str(certs.ca_cert),
             "--ssl-certfile", str(certs.cert),
             "--ssl-keyfile", str(certs.key),
             "--enable-supernode-auth",
             "--disable-runtime-dependency-installation",
             "--host", "127.0.0.1", "--port", str(self.port)],
            SUPERLINK_LOG,
        )  # fmt: skip
        wait_healthy(
            f"https://127.0.0.1:{self.port}/health",
            self.superlink,
            self.logs / SUPERLINK_LOG,
            ca_cert=certs.ca_cert,
        )

    def flwr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the ``flwr`` CLI against this federation's connection."""
        return subprocess.run(
            [str(BIN_DIR / "flwr"), *args], capture_output=True, text=True, env=self.env,
            cwd=self.directory, timeout=timeout,
        )  # fmt: skip

    def register(self, index: int) -> int:
        """``flwr supernode register`` node ``index``'s public key; returns its node id."""
        key = self.credentials.nodes[index].public
        done = self.flwr("supernode", "register", str(key), CONNECTION, "--format", "json")
        text = done.stdout
        try:
            answer = json.loads(text[text.index("{") :])
            return int(answer["node-id"])
        except (ValueError, KeyError):
            raise RunFailed(
                f"flwr supernode register {key} failed (exit {done.returncode}): "
                f"{(text + done.stderr).strip()[-500:]}"
            ) from None

    def registered(self) -> dict[int, str]:
        """``{node id: status}`` as ``flwr supernode ls`` reports them."""
        done = self.flwr("supernode", "ls", CONNECTION, "--format", "json")
        text = done.stdout
        try:
            answer = json.loads(text[text.index("{") :])
        except ValueError:
            raise RunFailed(f"flwr supernode ls failed: {(text + done.stderr)[-500:]}") from None
        return {int(n["node-id"]): str(n["status"]) for n in answer.get("nodes", [])}

    def start_node(
        self,
        index: int,
        node_config: NodeConfig,
        *,
        keys: NodeKeys | None = None,
        trust_ca: bool = True,
        max_retries: int | None = None,
        log_name: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``flower-supernode`` for node ``index``; its log is ``logs/<log_name>``.

        ``keys`` replaces the node's own key pair and ``trust_ca=False`` leaves out the
        CA certificate: both are for trying what the SuperLink refuses. Such a stranger
        is not tracked as node ``index`` (``kill_node`` leaves it), but ``close`` stops it.
        """
        own = keys is None and trust_ca
        keys = keys or self.credentials.nodes[index]
        args = supernode_command(
            self.credentials.address,
            keys.private,
            node_config,
            root_certificates=self.credentials.certs.ca_cert if trust_ca else None,
            port=free_port(),
            max_retries=max_retries,
        )
        process = self._popen(args, log_name or f"node-{index}.log")
        if own:
            self.nodes[index] = process
        else:
            self._extra.append(process)
        return process

    def kill_node(self, index: int) -> None:
        """Kill node ``index`` and its apps at once, as a device that loses power."""
        stop_process(self.nodes.pop(index, None), grace=0)

    def wait_online(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` registered nodes are online."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(s == "online" for s in self.registered().values()) >= count:
                return
            for index, process in self.nodes.items():
                if process.poll() is not None:
                    raise RunFailed(
                        f"SuperNode {index} exited (code {process.returncode}); "
                        f"see {self.logs / f'node-{index}.log'}"
                    )
            time.sleep(1)
        raise RunFailed(f"fewer than {count} SuperNodes came online within {timeout:.0f} s")

    def run(
        self,
        app_dir: Path,
        run_config: list[str],
        keep_waiting: Callable[[], bool],
        on_poll: Callable[[], None] | None = None,
    ) -> None:
        """``flwr run APP fedrobust --stream``; polls ``keep_waiting`` until it is False.

        ``on_poll`` is called on each poll (twice a second) as well, e.g. to kill a node.
        """
        if self.superlink is None:
            raise RunFailed("start the SuperLink first")
        follow_flwr_run(
            [str(app_dir), CONNECTION, "--stream", "--run-config", " ".join(run_config)],
            self.logs / FLWR_LOG, self.env, self.directory, self.superlink, keep_waiting,
            on_poll,
        )  # fmt: skip

    def close(self) -> None:
        """Stop every SuperNode, then the SuperLink; remove installed apps."""
        for process in [*self.nodes.values(), *self._extra]:
            stop_process(process, grace=5)
        self.nodes.clear()
        self._extra.clear()
        stop_process(self.superlink)
        self.superlink = None
        self.lifetime.close()
        shutil.rmtree(self.credentials.flwr_home / "apps", ignore_errors=True)


def node_config(index: int, num_nodes: int, data_dir: Path | None = None) -> dict[str, str | int]:
    """Node ``index``'s ``node_config``: its partition, and its npz under ``data_dir``."""
    config: dict[str, str | int] = {"partition-id": index, "num-partitions": num_nodes}
    if data_dir is not None:
        config["data-path"] = str(device_file(data_dir, index).resolve())
    return config


def run_deployment(
    scenario_path: Path,
    scenario: Scenario,
    run_dir: Path,
    *,
    directory: Path | None = None,
    data_dir: Path | None = None,
    rounds: int | None = None,
    seed: int | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` on a local TLS federation, one SuperNode per client.

    Parameters
    ----------
    scenario_path, scenario, run_dir, rounds, seed, on_round
        As for :func:`fedrobust.simulation.run_simulation`.
    directory : Path, optional
        Credentials and logs (default ``run_dir/deploy``); reused by later runs.
    data_dir : Path, optional
        Client ``i`` reads ``data_dir/client-<i>.npz`` (``data-path``) instead of its
        simulated partition.

    Raises
    ------
    RunFailed
        When the federation does not come up or the run does not complete.
    """
    watch = RunWatch(scenario_path, scenario, run_dir, rounds=rounds, seed=seed, on_round=on_round)
    num_nodes = scenario.data.partition.num_clients
    with LocalFederation(directory or RunDir(run_dir).deploy, num_nodes) as federation:
        for index in range(num_nodes):
            federation.register(index)
        for index in range(num_nodes):
            federation.start_node(index, node_config(index, num_nodes, data_dir))
        federation.wait_online(num_nodes)
        federation.run(APP_DIR, watch.run_config, watch.keep_waiting)
    return watch.result(federation.logs / FLWR_LOG)
