"""The run's privacy plan, fixed before round 1: each client's sigma, sample rate, steps.

With ``target_epsilon`` the noise is calibrated once for the whole run. The server's
sampling schedule is seeded and known in advance (:mod:`fedrobust.sampling`), so each
client's exact number of rounds is known; sigma is calibrated per client for its own
sample rate and total steps, so every client that takes part in all its rounds ends
just below the target (within Opacus's 0.01 tolerance) and none far below it.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

from fedrobust.errors import FedrobustError
from fedrobust.privacy.ledger import LedgerEntry, calibrate_noise, sample_rate, steps_per_epoch
from fedrobust.sampling import participation_counts, secret_sample
from fedrobust.scenario import Scenario
from fedrobust.train.config import TrainConfig


@dataclass(frozen=True)
class ClientPlan:
    """One client's DP-SGD parameters for the run.

    Parameters
    ----------
    noise_multiplier : float
        sigma for every round of this client.
    sample_rate : float
        Opacus's Poisson sample rate for the client's data and batch size.
    steps_per_round : int
        Noisy steps in one round (local epochs x steps per epoch).
    rounds : int
        Rounds the schedule samples this client in.
    """

    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    rounds: int

    def entry(self, rnd: int) -> LedgerEntry:
        """The release one round of this client makes."""
        return LedgerEntry(self.noise_multiplier, self.sample_rate, self.steps_per_round, rnd)


def check_delta(scenario: Scenario, train_sizes: dict[int, int]) -> None:
    """Refuse a delta that is not below 1 / n for the largest n it protects.

    Sample-level DP protects each example of every client's set: delta must be below
    1 / (largest client training set), the tightest bound. Client-level DP protects
    clients: delta must be below 1 / (number of clients).
    """
    dp = scenario.privacy.dp
    if dp.mode == "none" or not train_sizes:
        return
    if dp.mode == "client":
        n, unit = len(train_sizes), "number of clients"
    else:
        n, unit = max(train_sizes.values()), "largest client training set"
    if dp.delta >= 1 / n:
        raise FedrobustError(
            "privacy.dp.delta", f"{dp.delta:g} is not below 1 / ({unit} = {n}) = {1 / n:.3g}"
        )


def round_steps(num_examples: int, train: TrainConfig, poisson: bool) -> tuple[float, int]:
    """(sample rate, noisy steps) of one round of DP-SGD on ``num_examples`` examples."""
    batch = train.batch_size
    return sample_rate(num_examples, batch), train.local_epochs * steps_per_epoch(
        num_examples, batch, poisson
    )


def plan_sample_dp(scenario: Scenario, train_sizes: dict[int, int]) -> dict[int, ClientPlan]:
    """Each client's DP-SGD plan (``privacy.dp.mode: sample``).

    Parameters
    ----------
    scenario : Scenario
        The validated scenario.
    train_sizes : dict[int, int]
        Training examples of each client (partition id -> n).

    Raises
    ------
    FedrobustError
        For a target epsilon no noise can reach (:func:`check_delta` checks delta).
    """
    dp = scenario.privacy.dp
    counts = participation_counts(scenario)
    plans: dict[int, ClientPlan] = {}
    for client, n in sorted(train_sizes.items()):
        rate, per_round = round_steps(n, scenario.train, dp.poisson_sampling)
        rounds = counts[client]
        sigma = dp.noise_multiplier
        if sigma is None:
            assert dp.target_epsilon is not None
            sigma = _calibrate(
                dp.target_epsilon, dp.delta, rate, max(rounds, 1) * per_round, dp.accountant
            )
        plans[client] = ClientPlan(sigma, rate, per_round, rounds)
    return plans


def client_level_entry(scenario: Scenario, sigma: float, rnd: int) -> LedgerEntry:
    """The release of one round of user-level DP (``privacy.dp.mode: client``).

    One Gaussian mechanism (noise ``sigma``, from :func:`client_level_sigma`) per round
    on the average of the clipped updates, sampled at rate ``clients per round /
    clients`` (amplification by subsampling, as in DP-FedAvg; our fixed-size sample is
    treated as Poisson at that rate) when the sample is secret, at rate 1 otherwise.
    """
    return LedgerEntry(sigma, client_rate(scenario), 1, rnd)


def client_rate(scenario: Scenario) -> float:
    """The sampling rate the client-level accounting may amplify by.

    The share of the clients sampled each round when that sample is secret
    (:func:`fedrobust.sampling.secret_sample`); 1 otherwise: a sample anyone can
    recompute from the published seed gives no amplification.
    """
    if not secret_sample(scenario):
        return 1.0
    return scenario.sampled_per_round() / scenario.data.partition.num_clients


def client_level_sigma(scenario: Scenario) -> float:
    """sigma of user-level DP: given, or calibrated for ``train.rounds`` rounds."""
    dp = scenario.privacy.dp
    if dp.noise_multiplier is not None:
        return dp.noise_multiplier
    assert dp.target_epsilon is not None
    return _calibrate(
        dp.target_epsilon, dp.delta, client_rate(scenario), scenario.train.rounds, dp.accountant
    )


@functools.lru_cache(maxsize=1024)  # the server, the CLI check and the wrappers ask alike
def _calibrate(target: float, delta: float, rate: float, steps: int, accountant: str) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calibrate_noise(target, delta, rate, steps, accountant)
    except ValueError as exc:
        if "too low" in str(exc):
            what = f"{target:g} cannot be reached at delta {delta:g} over {steps} steps"
        else:  # e.g. the GDP accountant's root finder failing at tiny noise
            what = (
                f"Opacus's {accountant} accountant could not calibrate sigma for {target:g} at "
                f"delta {delta:g}, sample rate {rate:.3g}, {steps} steps ({exc}); "
                "try privacy.dp.accountant: rdp"
            )
        raise FedrobustError("privacy.dp.target_epsilon", what) from None
