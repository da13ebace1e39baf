"""PNG plots of a run: learning curves and per-client label histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(metrics: dict[str, Any], path: Path) -> Path:
    """Global test accuracy and loss per round (round 0 = initial model)."""
    rows = ([metrics["initial"]] if metrics.get("initial") else []) + metrics["rounds"]
    rounds = [r["round"] for r in rows]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_acc.plot(rounds, [r["accuracy"] for r in rows], marker="o", ms=3)
    ax_acc.set(xlabel="round", ylabel="test accuracy", title="Global test accuracy", ylim=(0, 1))
    ax_loss.plot(rounds, [r["loss"] for r in rows], marker="o", ms=3, color="tab:red")
    ax_loss.set(xlabel="round", ylabel="test loss", title="Global test loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    fig.suptitle(metrics["scenario"]["name"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_label_histograms(data: dict[str, Any], path: Path) -> Path:
    """Stacked bars: each client's training labels by class."""
    counts = np.array([c["label_histogram"] for c in data["clients"]])
    clients = np.arange(len(counts))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(counts) + 2), 4))
    bottom = np.zeros(len(counts))
    cmap = plt.get_cmap("tab10" if counts.shape[1] <= 10 else "tab20")
    for cls in range(counts.shape[1]):
        ax.bar(clients, counts[:, cls], bottom=bottom, color=cmap(cls % cmap.N), label=str(cls))
        bottom += counts[:, cls]
    ax.set(xlabel="client", ylabel="training samples", title="Label distribution per client")
    if counts.shape[1] <= 20:
        ax.legend(title="class", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
