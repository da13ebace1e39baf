"""Start this device's SuperNode: the one command an edge node runs.

    fedrobust-node --superlink HOST:PORT --root-certificates ca.crt \\
        --key node-key --partition-id 0 --num-partitions 3 [--data-path data.npz]

(``python -m fedrobust.apps.clients.edge_node`` is the same command.) It needs only the
base install, ``pip install fedrobust``.

It checks what the device holds before anything connects: the CA certificate, the
private key (an OpenSSH EC key, as ``flwr supernode register`` wants its public half)
and the data file (``x`` and ``y`` readable). A problem prints
``error: <file or option>: <what>`` and exits 2. Then it replaces itself with
``flower-supernode`` (TLS, node authentication, this node's ``node_config``), so the
device runs Flower's own process and nothing else. ``--dry-run`` prints that command.
The data's shape and labels are checked against the federation when the server first
asks (the node learns the input spec from the server's recipe).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from cryptography.x509 import load_pem_x509_certificate

from fedrobust.data.device import read_device_arrays
from fedrobust.deploy.local import supernode_command
from fedrobust.errors import FedrobustError

EXIT_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedrobust-node", description="Start this device's SuperNode."
    )
    parser.add_argument("--superlink", required=True, help="HOST:PORT of the SuperLink")
    parser.add_argument(
        "--root-certificates", type=Path, required=True, help="the federation's CA certificate"
    )
    parser.add_argument("--key", type=Path, required=True, help="this node's private key")
    parser.add_argument("--partition-id", type=int, required=True, help="this client's index")
    parser.add_argument("--num-partitions", type=int, required=True, help="clients in all")
    parser.add_argument("--data-path", type=Path, help="this device's npz (default: simulated)")
    parser.add_argument("--port", type=int, default=9094, help="local ClientApp API port")
    parser.add_argument("--dry-run", action="store_true", help="print the command, start nothing")
    return parser


def check_inputs(args: argparse.Namespace) -> None:
    """Raise :class:`FedrobustError` naming the first file or option that is unusable."""
    host, _, port = args.superlink.rpartition(":")
    if not host or not port.isdigit():
        raise FedrobustError("--superlink", f"expected HOST:PORT, got '{args.superlink}'")
    if not 0 <= args.partition_id < args.num_partitions:
        raise FedrobustError(
            "--partition-id", f"{args.partition_id} outside 0..{args.num_partitions - 1}"
        )
    for path in (args.root_certificates, args.key, args.data_path):
        if path is not None and not path.is_file():
            raise FedrobustError(str(path), "no such file")
    try:
        load_pem_x509_certificate(args.root_certificates.read_bytes())
    except ValueError as exc:
        raise FedrobustError(
            str(args.root_certificates), f"not a PEM certificate ({exc})"
        ) from None
    try:
        key = load_ssh_private_key(args.key.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise FedrobustError(str(args.key), f"not an OpenSSH private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FedrobustError(str(args.key), "Flower's node authentication needs an EC key")
    if args.data_path is not None:  # its shape and labels: when the server's recipe comes
        read_device_arrays(args.data_path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_inputs(args)
    except FedrobustError as exc:
        print(f"error: {exc.where}: {exc.what}", file=sys.stderr)
        return EXIT_INPUT
    config: dict[str, str | int] = {
        "partition-id": args.partition_id,
        "num-partitions": args.num_partitions,
    }
    if args.data_path is not None:
        config["data-path"] = str(args.data_path.resolve())
    command = supernode_command(
        args.superlink, args.key.resolve(), config,
        root_certificates=args.root_certificates.resolve(), port=args.port,
    )  # fmt: skip
    if args.dry_run:
        print(shlex.join(command))
        return 0
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.execv(command[0], command)  # the device now runs Flower's SuperNode itself
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
