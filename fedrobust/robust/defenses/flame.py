"""FLAME (Nguyen et al., USENIX Security 2022, https://arxiv.org/abs/2101.02281).

Three steps against backdoors:

1. **Clustering.** HDBSCAN (scikit-learn's, imported when the rule runs) on the pairwise
   cosine distances of the updates, ``min_cluster_size = n // 2 + 1``, ``min_samples =
   1``, one cluster allowed: the majority cluster is admitted, the rest (HDBSCAN's noise
   points) are flagged. The paper clusters the local models; with one global model per
   round the cosine distances of the models' differences to it are the ones that carry
   the direction of each client's change, so we cluster the updates.
2. **Clipping.** ``S`` is the median norm of all the round's updates (the paper's median
   Euclidean distance of the local models to the global one); each admitted update is
   scaled by ``min(1, S / ||x_i||)`` and the admitted updates are averaged (equally).
3. **Noise.** Gaussian noise with standard deviation ``lambda * S`` (``lambda`` =
   ``defense.noise_lambda``, the paper's 0.001 for image classification) is added to
   each coordinate of the average. It is protecting randomness: the secret source, or
   the seed under ``defense.reproducible``.

FLAME assumes fewer than half the clients are malicious (``f < n / 2``); it needs no
``f``. A round whose updates form no majority cluster gives no aggregate.
"""

from __future__ import annotations

import numpy as np

from fedrobust.extras import require
from fedrobust.robust.defenses.base import Combined, Defense, Updates, register_defense


def cosine_distances(rows: np.ndarray) -> np.ndarray:
    """``1 - cos(x_i, x_j)`` for every pair of rows (a zero row is at distance 1)."""
    norms = np.linalg.norm(rows, axis=1)
    unit = rows / np.maximum(norms, 1e-12)[:, None]
    return np.clip(1.0 - unit @ unit.T, 0.0, 2.0)


def majority_cluster(distances: np.ndarray) -> list[int]:
    """Rows of the largest HDBSCAN cluster of a precomputed distance matrix (``min_cluster_size
    = n // 2 + 1``); every row with fewer than three updates; none if HDBSCAN finds no
    cluster."""
    n = len(distances)
    if n < 3:
        return list(range(n))
    require("defense.name: flame", "sklearn")
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(
        min_cluster_size=n // 2 + 1,
        min_samples=1,
        metric="precomputed",
        allow_single_cluster=True,
        copy=True,
    ).fit_predict(distances)
    clusters = [label for label in labels if label >= 0]
    if not clusters:
        return []
    largest = max(set(clusters), key=clusters.count)
    return [i for i in range(n) if labels[i] == largest]


@register_defense("flame")
class Flame(Defense):
    """Majority cluster by cosine distance, clipped to the median norm, noised."""

    options = frozenset({"noise_lambda"})

    def combine(self, updates: Updates) -> Combined:
        x = updates.deltas
        admitted = majority_cluster(cosine_distances(x))
        flagged = [pid for i, pid in enumerate(updates.ids) if i not in admitted]
        norms = np.linalg.norm(x, axis=1)
        bound = float(np.median(norms))
        detail = {"clip_norm": bound, "selected": [updates.ids[i] for i in admitted]}
        if not admitted:
            return Combined(None, flagged, {**detail, "error": "flame found no majority cluster"})
        factors = np.minimum(1.0, bound / np.maximum(norms[admitted], 1e-12))
        mean = (x[admitted] * factors[:, None]).mean(axis=0)
        sigma = self.cfg.noise_lambda * bound
        noise = self.rng().normal(0.0, sigma, size=mean.shape) if sigma > 0 else 0.0
        return Combined(mean + noise, flagged, {**detail, "noise_std": sigma})
