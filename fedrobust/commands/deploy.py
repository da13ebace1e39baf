"""``fedrobust deploy``, ``credentials`` and ``split``: a TLS federation and its devices."""

from __future__ import annotations

import argparse

from fedrobust.commands.common import overrides
from fedrobust.commands.follow import follow, headline
from fedrobust.commands.preflight import preflight
from fedrobust.errors import FedrobustError


def cmd_deploy(args: argparse.Namespace) -> int:
    """Run a scenario on local SuperNodes behind a TLS SuperLink with node authentication."""
    from rich.console import Console

    from fedrobust.data.device import device_file, load_device_data
    from fedrobust.deploy.local import run_deployment
    from fedrobust.launch import resolve_run_dir
    from fedrobust.scenario import load_scenario

    console = Console(highlight=False, soft_wrap=True)
    scenario = load_scenario(args.scenario, overrides(args))
    fed, privacy_plan = preflight(scenario, simulation=False)
    run_dir = resolve_run_dir(scenario, args.out)
    n = scenario.data.partition.num_clients
    if args.data_dir is not None:  # every device file must fit before any node starts
        if scenario.privacy.audit is not None:
            raise FedrobustError(
                "--data-dir", "privacy.audit plants canaries in simulated partitions only"
            )
        for i in range(n):
            path = device_file(args.data_dir, i)
            load_device_data(path, fed.spec, scenario.data.val_fraction, scenario.seed + i)
    headline(console, scenario, fed, run_dir, f"{n} SuperNodes (TLS, node authentication)")
    if privacy_plan:
        console.print(privacy_plan)
    return follow(
        console, scenario, run_dir,
        lambda on_round: run_deployment(
            args.scenario, scenario, run_dir, directory=args.dir, data_dir=args.data_dir,
            rounds=args.rounds, seed=args.seed, on_round=on_round,
        ),
    )  # fmt: skip


def cmd_credentials(args: argparse.Namespace) -> int:
    """Create the CA, SuperLink certificate, node key pairs and flwr connection."""
    from fedrobust.deploy.local import CONNECTION, create_credentials

    hosts = [h.strip() for h in args.host if h.strip()]
    if not hosts:
        raise FedrobustError("--host", "give at least one host name or IP address")
    creds = create_credentials(args.dir, args.nodes, hosts, args.port)
    print(f"CA certificate      {creds.certs.ca_cert}   (copy to every device)")
    print(f"SuperLink cert/key  {creds.certs.cert}, {creds.certs.key}   ({', '.join(hosts)})")
    for keys in creds.nodes:
        print(f"node key pair       {keys.private} (+ .pub)   (private key: its device only)")
    print(f"flwr connection     '{CONNECTION}' -> {creds.address} in {creds.flwr_home}/config.toml")
    print(f"                    export FLWR_HOME={creds.flwr_home}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    """Write each client's data of a scenario as ``OUT/client-<i>.npz``."""
    from fedrobust.data import build_federation
    from fedrobust.data.device import write_device_files
    from fedrobust.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    fed = build_federation(scenario.data, scenario.seed)
    for index, path in enumerate(write_device_files(fed, args.out)):
        client = fed.clients[index]
        print(f"{path}  train {len(client.y_train)}  val {len(client.y_val)}")
    return 0
