"""The server's side of privacy: per-client recipes, the ledger, and epsilon per round.

``RunPrivacy`` is built once per run from the scenario and each client's training-set
size. It adds each client's DP settings to the round's recipe, records every release
in the ledger (kept in checkpoints, so a resumed run keeps its epsilon) and turns the
ledger into the figures of ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flwr.app import ConfigRecord, Message
from flwr.serverapp.strategy import FedAvg

from fedrobust.privacy.client_dp import CLIENT_CLIPPING, wrap_client_dp
from fedrobust.privacy.ledger import LedgerEntry, PrivacyLedger, epsilon
from fedrobust.privacy.plan import (
    ClientPlan,
    check_delta,
    client_level_entry,
    client_level_sigma,
    client_rate,
    plan_sample_dp,
)
from fedrobust.scenario import Scenario

log = logging.getLogger("fedrobust.privacy")


class RunPrivacy:
    """DP bookkeeping of one run on the server.

    Parameters
    ----------
    scenario : Scenario
        The validated scenario.
    train_sizes : dict[int, int]
        Training examples of each client (partition id -> n).
    """

    def __init__(self, scenario: Scenario, train_sizes: dict[int, int]) -> None:
        self.scenario = scenario
        self.dp = scenario.privacy.dp
        self.num_clients = scenario.data.partition.num_clients
        self.ledger = PrivacyLedger(self.dp.delta, self.dp.accountant)
        self.releases: list[LedgerEntry] = []  # client mode: one per aggregated round
        self.plans: dict[int, ClientPlan] = {}
        self.client_sigma = 0.0
        check_delta(scenario, train_sizes)
        if self.dp.mode == "sample":
            self.plans = plan_sample_dp(scenario, train_sizes)
        if self.dp.mode == "client":
            self.client_sigma = client_level_sigma(scenario)

    @property
    def enabled(self) -> bool:
        return self.dp.mode != "none"

    def assumptions(self) -> dict[str, Any]:
        """Whether the printed epsilon holds, and what it assumes (``final`` in metrics)."""
        dp = self.dp
        if dp.reproducible:
            note = (
                "privacy.dp.reproducible: the noise derives from the published seed and "
                "can be regenerated; this epsilon protects nothing"
            )
        elif dp.mode == "sample":
            note = (
                "DP-SGD noise and Poisson batches from secret entropy; each client's "
                "examples protected; the server's ledger trusted for accounting"
            )
        else:
            note = (
                "noise and client sample from secret entropy; amplification by sampling "
                f"at rate {client_rate(self.scenario):.3g}; each client's whole update "
                "protected; the server trusted to add the noise"
            )
        doc: dict[str, Any] = {"privacy_valid": not dp.reproducible, "privacy_assumptions": note}
        if not dp.poisson_sampling and dp.mode == "sample":
            doc["privacy_assumptions"] += "; shuffled batches accounted as Poisson (approximate)"
        return doc

    def client_config(self, client: int, config: ConfigRecord) -> ConfigRecord:
        """The round's recipe for ``client``: the shared one plus its DP settings."""
        extra: dict[str, Any] = {}
        if self.dp.mode == "sample":
            extra["dp-noise-multiplier"] = self.plans[client].noise_multiplier
            past = [e.to_dict() for e in self.ledger.client_entries(client)]
            extra["dp-history"] = json.dumps(past)
        if self.dp.mode == "client" and self.dp.side == "client":
            extra[CLIENT_CLIPPING] = self.dp.clipping
        return ConfigRecord({**dict(config.items()), **extra})

    def record_round(
        self,
        rnd: int,
        sampled: list[int],
        refused: set[int],
        accepted: dict[int, Message],
        aggregated: bool,
    ) -> dict[str, Any]:
        """Record this round's releases; return the round's privacy figures.

        Sample mode: every sampled client that did not refuse spent one round of its
        plan; the entry is the one the client's accountant reported, or the plan when
        its reply was lost (the ledger errs on the side of more spending). Client mode:
        one release when the round produced an aggregate.
        """
        if self.dp.mode == "sample":
            for client in sampled:
                if client in refused:
                    continue
                planned = entry = self.plans[client].entry(rnd)
                reply = accepted.get(client)
                if reply is not None:
                    entry = reported_entry(reply, rnd) or planned
                    if entry != planned:
                        log.warning("client %d reported %s, planned %s", client, entry, planned)
                self.ledger.add(client, entry)
            eps = self.ledger.epsilons(self.num_clients)
            return {
                "epsilon": max(eps),
                "epsilon_mean": sum(eps) / len(eps),
                "epsilon_clients": eps,
            }
        if self.dp.mode == "client":
            if aggregated:
                self.releases.append(client_level_entry(self.scenario, self.client_sigma, rnd))
            eps_all = self.client_level_epsilon()
            return {"epsilon": eps_all, "epsilon_mean": eps_all}
        return {}

    def client_level_epsilon(self) -> float:
        """User-level epsilon of the releases so far (client mode)."""
        return epsilon(self.releases, self.dp.delta, self.dp.accountant)

    def final(self) -> dict[str, Any]:
        """Run totals for ``final`` in metrics.json."""
        if not self.enabled:
            return {}
        doc: dict[str, Any] = {
            "delta": self.dp.delta,
            "accountant": self.dp.accountant,
            "dp_mode": self.dp.mode,
            **self.assumptions(),
        }
        if self.dp.mode == "sample":
            eps = self.ledger.epsilons(self.num_clients)
            doc.update(
                epsilon=max(eps),
                epsilon_mean=sum(eps) / len(eps),
                noise_multipliers={str(c): p.noise_multiplier for c, p in self.plans.items()},
                privacy_ledger=self.ledger.to_json(),
            )
        else:
            doc.update(
                epsilon=self.client_level_epsilon(),
                privacy_ledger={"all_clients": [e.to_dict() for e in self.releases]},
            )
        return doc

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state: the ledger and the client-level releases."""
        return {
            "ledger": self.ledger.state_dict(),
            "releases": [e.to_dict() for e in self.releases],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.ledger.load_state_dict(state["ledger"])
        self.releases = [LedgerEntry.from_dict(e) for e in state["releases"]]


def reported_entry(reply: Message, rnd: int) -> LedgerEntry | None:
    """The release a client's reply reports (its accountant's), or ``None`` when the
    reply reports none or an implausible one (the plan stands in then)."""
    metrics = reply.content.metric_records["metrics"]
    try:
        sigma = float(metrics["dp-noise-multiplier"])  # type: ignore[arg-type]
        rate = float(metrics["dp-sample-rate"])  # type: ignore[arg-type]
        steps = metrics["dp-steps"]
    except (KeyError, TypeError, ValueError):
        return None
    if not (sigma > 0 and 0 < rate <= 1 and isinstance(steps, int) and steps >= 0):
        return None
    return LedgerEntry(sigma, rate, steps, rnd)


def check_privacy(scenario: Scenario, train_sizes: dict[int, int]) -> str:
    """Check the privacy settings against the data before a run; describe the plan.

    Raises
    ------
    FedrobustError
        A delta that is too large, an unreachable target epsilon, or client-level DP
        parameters Flower's wrappers refuse.
    """
    dp = scenario.privacy.dp
    if dp.mode == "none":
        return ""
    privacy = RunPrivacy(scenario, train_sizes)
    warning = (
        " NOT PRIVATE: privacy.dp.reproducible derives the noise from the published seed."
        if dp.reproducible
        else ""
    )
    if dp.mode == "client":
        wrap_client_dp(FedAvg(), scenario)
        planned = [
            client_level_entry(scenario, privacy.client_sigma, r)
            for r in range(1, scenario.train.rounds + 1)
        ]
        return (
            f"user-level DP: sigma {privacy.client_sigma:.4g}, clipping "
            f"{dp.clipping} {dp.clipping_norm:g} on the {dp.side}, clients sampled at rate "
            f"{client_rate(scenario):.3g}; epsilon after {scenario.train.rounds} rounds "
            f"{epsilon(planned, dp.delta, dp.accountant):.3f} at delta {dp.delta:g}{warning}"
        )
    sigmas = [p.noise_multiplier for p in privacy.plans.values()]
    planned = [
        epsilon([p.entry(0)] * p.rounds, dp.delta, dp.accountant) for p in privacy.plans.values()
    ]
    return (
        f"DP-SGD: sigma {min(sigmas):.4g}..{max(sigmas):.4g}, clipping {dp.max_grad_norm:g}; "
        f"planned epsilon per client {min(planned):.3f}..{max(planned):.3f} "
        f"at delta {dp.delta:g} ({dp.accountant}){warning}"
    )
