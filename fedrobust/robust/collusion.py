"""Colluding attackers who know the round's benign updates (omniscient model poisoning).

This is the attacker's side only, kept apart from the defences: the server loop calls it
on the malicious clients' replies before any defence sees them, to simulate attackers
that share what the honest clients sent. Every malicious client sends the same vector.
All functions take the benign updates as rows of ``benign`` (shape ``(b, d)``).
"""

from __future__ import annotations

import math

import numpy as np

from fedrobust.robust.config import AttackConfig


def alie_z(num_clients: int, num_malicious: int) -> float:
    """Baruch et al.'s z_max: the largest shift the majority still "supports".

    ``s = floor(n / 2 + 1) - m`` honest clients must be out-voted;
    ``z = Phi^-1((n - s) / n)`` (Baruch et al. 2019, https://arxiv.org/abs/1902.06156,
    Algorithm 1).

    Raises
    ------
    ValueError
        When the formula gives no positive z: ``(n - s) / n <= 1/2`` (too few attackers
        to out-vote anyone: z <= 0), or ``s <= 0`` (the attackers are a majority: no
        finite z). The reason is in the message.
    """
    supporters = math.floor(num_clients / 2 + 1) - num_malicious
    if supporters <= 0:
        raise ValueError(
            f"{num_malicious} attackers of {num_clients} are a majority, so Phi^-1 of "
            f"(n - s) / n >= 1 has no finite z"
        )
    from scipy.stats import norm  # scipy.stats: ~0.5 s, only for ALIE's z

    share = (num_clients - supporters) / num_clients
    z = float(norm.ppf(share))
    if not z > 0:
        raise ValueError(
            f"z = Phi^-1({share:.3g}) = {z:.3g} <= 0: {num_malicious} attackers of "
            f"{num_clients} are too few to out-vote the {supporters} honest clients ALIE "
            "needs"
        )
    return z


def round_alie_z(num_clients: int, num_malicious: int) -> float:
    """The default z of one round: Baruch et al.'s z_max, or 0 (the attackers send the
    benign mean) in a round whose sample holds too few attackers for a positive z.

    The scenario's typical round is checked to give a positive z
    (:mod:`fedrobust.config.compat`); only rounds that sample fewer attackers fall back.
    """
    try:
        return alie_z(num_clients, num_malicious)
    except ValueError:
        return 0.0


def alie(benign: np.ndarray, z: float) -> np.ndarray:
    """A Little Is Enough (Baruch et al. 2019, https://arxiv.org/abs/1902.06156).

    ``mean - z * std`` per coordinate: inside the benign spread, so coordinate-wise and
    distance-based rules keep it, yet it pulls every coordinate the same way.
    """
    return benign.mean(axis=0) - z * benign.std(axis=0)


def ipm(benign: np.ndarray, epsilon: float) -> np.ndarray:
    """Inner-product manipulation (Xie et al. 2020, https://arxiv.org/abs/1903.03936).

    ``-epsilon * mean``: a small negative multiple of the true update, so the aggregate's
    inner product with it turns negative.
    """
    return -epsilon * benign.mean(axis=0)


def minmax(benign: np.ndarray, deviation: str, gamma_init: float = 10.0) -> np.ndarray:
    """Min-max (Shejwalkar & Houmansadr 2021, https://www.ndss-symposium.org/ndss-paper/manipulating-the-byzantine-optimizing-model-poisoning-attacks-and-defenses-for-federated-learning/).

    ``mean + gamma * p`` with ``p`` the direction (``-std``, ``-mean / ||mean||`` or
    ``-sign(mean)``) and ``gamma`` the largest found by halving search such that the
    malicious update is no farther from any benign update than the farthest two benign
    updates are from each other.
    """
    mean = benign.mean(axis=0)
    if deviation == "std":
        direction = -benign.std(axis=0)
    elif deviation == "unit_vec":
        direction = -mean / max(float(np.linalg.norm(mean)), 1e-12)
    else:
        direction = -np.sign(mean)
    sq = np.square(benign).sum(axis=1)
    pairwise = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * benign @ benign.T, 0.0))
    limit = float(pairwise.max())

    def fits(gamma: float) -> bool:
        candidate = mean + gamma * direction
        return float(np.linalg.norm(benign - candidate, axis=1).max()) <= limit

    gamma, step, best = gamma_init, gamma_init / 2, 0.0
    for _ in range(40):
        if fits(gamma):
            best = gamma
            gamma += step
        else:
            gamma -= step
        step /= 2
    return mean + best * direction


def colluding_update(
    cfg: AttackConfig, benign: np.ndarray, num_clients: int, num_malicious: int
) -> np.ndarray:
    """The update every malicious client sends this round (``attack.kind`` alie/ipm/minmax).

    Parameters
    ----------
    cfg : AttackConfig
        The scenario's attack.
    benign : np.ndarray
        The honest clients' updates of the round, one per row (at least two).
    num_clients, num_malicious : int
        Clients in the round and how many of them are malicious (ALIE's default z).
    """
    if len(benign) < 2:
        raise ValueError(f"{cfg.kind} needs at least 2 benign updates, got {len(benign)}")
    if cfg.kind == "alie":
        return alie(
            benign, cfg.z if cfg.z is not None else round_alie_z(num_clients, num_malicious)
        )
    if cfg.kind == "ipm":
        return ipm(benign, cfg.epsilon)
    if cfg.kind == "minmax":
        return minmax(benign, cfg.deviation)
    raise ValueError(f"attack.kind '{cfg.kind}' is not a colluding attack")
