"""PNG plots of a run: learning curves and per-client label histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: Beyond this many clients a plot draws a band over the clients, not one line each.
MANY_LINES = 100


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(metrics["scenario"]["name"])
    return _save(fig, path)


def plot_label_histograms(data: dict[str, Any], path: Path) -> Path:
    """Stacked bars: each client's training labels by class; for a federation recorded
    as ``clients_summary`` (many clients) the distributions over the clients instead
    (:func:`plot_client_distributions`)."""
    if "clients" not in data:
        return plot_client_distributions(data["clients_summary"], path)
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
    return _save(fig, path)


def plot_client_distributions(summary: dict[str, Any], path: Path) -> Path:
    """Three panels for many clients: how many clients hold how many training samples,
    how skewed their labels are (share of the largest class), and the labels of the
    whole federation."""
    fig, (ax_size, ax_share, ax_labels) = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, xlabel in (
        (ax_size, "train_histogram", "training samples"),
        (ax_share, "largest_class_share_histogram", "share of the largest class"),
    ):
        edges, counts = np.array(summary[key]["edges"]), summary[key]["counts"]
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="white")
        ax.set(xlabel=xlabel, ylabel="clients")
    ax_size.set_title(f"Training-set size ({summary['count']} clients)")
    ax_share.set_title("Label skew per client")
    totals = summary["label_totals"]
    ax_labels.bar(np.arange(len(totals)), totals, color="tab:gray")
    ax_labels.set(xlabel="class", ylabel="training samples", title="Labels, all clients")
    for ax in (ax_size, ax_share, ax_labels):
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_client_spread(metrics: dict[str, Any], path: Path) -> Path:
    """Per-client validation accuracy each round: median line, min-max band, points."""
    rows = [r for r in metrics["rounds"] if r.get("clients")]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    if rows:
        rounds = [r["round"] for r in rows]
        values = [
            [c["val_accuracy"] for c in r["clients"] if c["val_accuracy"] is not None] for r in rows
        ]
        lows = [min(v) if v else np.nan for v in values]
        highs = [max(v) if v else np.nan for v in values]
        medians = [float(np.median(v)) if v else np.nan for v in values]
        ax.fill_between(rounds, lows, highs, alpha=0.2, label="min-max over clients")
        ax.plot(rounds, medians, marker="o", ms=3, label="median client")
        for rnd, vals in zip(rounds, values, strict=True):
            ax.scatter([rnd] * len(vals), vals, s=6, color="gray", alpha=0.5)
        ax.legend(loc="lower right")
    ax.set(xlabel="round", ylabel="validation accuracy", ylim=(0, 1),
           title="Per-client validation accuracy after local training")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def plot_fairness(metrics: dict[str, Any], path: Path) -> Path:
    """Per-client accuracy on the clients' local test splits: each round's mean and worst
    10 % (global model; personal models beside it), and the final distribution over
    clients as sorted points."""
    rows = [r for r in metrics["rounds"] if r.get("global_local")]
    final = metrics.get("final") or {}
    fig, (ax_curve, ax_dist) = plt.subplots(1, 2, figsize=(11, 3.8))
    rounds = [r["round"] for r in rows]
    for key, label, color in (("global_local", "global", "tab:blue"),
                              ("personalized", "personal", "tab:green")):  # fmt: skip
        series = [r.get(key) or {} for r in rows]
        if any(series):
            ax_curve.plot(rounds, [s.get("mean", np.nan) for s in series], color=color,
                          marker="o", ms=3, label=f"{label}: mean")  # fmt: skip
            ax_curve.plot(rounds, [s.get("worst_10pct", np.nan) for s in series], color=color,
                          ls="--", label=f"{label}: worst 10 %")  # fmt: skip
        summary = final.get(key)
        if summary:
            values = sorted(summary["per_client"].values())
            ax_dist.plot(np.arange(len(values)), values, "o", color=color, label=label)
    if rows:
        ax_curve.plot(rounds, [r["accuracy"] for r in rows], color="gray", lw=1,
                      label="global test set")  # fmt: skip
    ax_curve.set(xlabel="round", ylabel="accuracy", ylim=(0, 1),
                 title="Clients' local test accuracy (clients of the round)")  # fmt: skip
    ax_dist.set(xlabel="client (sorted)", ylabel="accuracy", ylim=(0, 1),
                title="Final model on every client's local test split")  # fmt: skip
    for ax in (ax_curve, ax_dist):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_privacy(metrics: dict[str, Any], path: Path) -> Path:
    """Cumulative epsilon per round (each client, or their min-max band beyond
    :data:`MANY_LINES` clients; max and mean), and accuracy vs epsilon."""
    rows = [r for r in metrics["rounds"] if "epsilon" in r]
    fig, (ax_eps, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    rounds = [r["round"] for r in rows]
    per_client = [r["epsilon_clients"] for r in rows if "epsilon_clients" in r]
    if per_client and len(per_client) == len(rows) and len(per_client[0]) > MANY_LINES:
        ax_eps.fill_between(rounds, [min(e) for e in per_client], [max(e) for e in per_client],
                            color="gray", alpha=0.3, label="min-max over clients")  # fmt: skip
    elif per_client and len(per_client) == len(rows):
        for client, series in enumerate(zip(*per_client, strict=True)):
            ax_eps.plot(rounds, series, color="gray", alpha=0.4, lw=1,
                        label="each client" if client == 0 else None)  # fmt: skip
        ax_eps.plot(rounds, [r["epsilon_mean"] for r in rows], color="tab:blue", label="mean")
    ax_eps.plot(rounds, [r["epsilon"] for r in rows], color="tab:red", marker="o", ms=3,
                label="max (reported)")  # fmt: skip
    ax_eps.set(xlabel="round", ylabel="epsilon", title="Cumulative epsilon")
    ax_eps.legend(loc="upper left", fontsize=8)
    ax_acc.plot([r["epsilon"] for r in rows], [r["accuracy"] for r in rows], marker="o", ms=3)
    ax_acc.set(xlabel="epsilon (max over clients)", ylabel="test accuracy", ylim=(0, 1),
               title="Accuracy vs privacy spent")  # fmt: skip
    for ax in (ax_eps, ax_acc):
        ax.grid(alpha=0.3)
    ax_eps.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def plot_robustness(metrics: dict[str, Any], path: Path) -> Path:
    """Final robust accuracy vs eps per attack, and robust accuracy over the rounds."""
    final = metrics.get("final") or {}
    fig, (ax_eps, ax_rounds) = plt.subplots(1, 2, figsize=(10, 3.8))
    curves: dict[str, list[tuple[float, float]]] = {}
    for key, value in (final.get("robust_accuracy") or {}).items():
        name, eps = key.rsplit("@", 1)
        try:  # clean@subset has no eps: it is the clean point of the attacked subset
            curves.setdefault(name, []).append((float(eps), value))
        except ValueError:
            continue
    for name, points in curves.items():
        points.sort()
        ax_eps.plot([0.0] + [p[0] for p in points], [final.get("accuracy", np.nan)]
                    + [p[1] for p in points], marker="o", ms=3, label=name)  # fmt: skip
    ax_eps.set(xlabel="eps", ylabel="accuracy", ylim=(0, 1), title="Final model under attack")
    rows = [r for r in metrics["rounds"] if r.get("robust_accuracy")]
    keys = sorted({k for r in rows for k in r["robust_accuracy"] if k != "clean@subset"})
    for key in keys:
        ax_rounds.plot([r["round"] for r in rows], [r["robust_accuracy"].get(key) for r in rows],
                       marker="o", ms=3, label=key)  # fmt: skip
    every = metrics["rounds"]
    ax_rounds.plot([r["round"] for r in every], [r["accuracy"] for r in every], color="black",
                   lw=1, label="clean")  # fmt: skip
    ax_rounds.set(xlabel="round", ylabel="accuracy", ylim=(0, 1), title="Robust accuracy per round")
    ax_rounds.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_eps, ax_rounds):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_poisoning(metrics: dict[str, Any], path: Path) -> Path:
    """Clean accuracy and backdoor success per round; detection precision and recall."""
    rows = metrics["rounds"]
    rounds = [r["round"] for r in rows]
    fig, (ax_acc, ax_det) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_acc.plot(rounds, [r["accuracy"] for r in rows], marker="o", ms=3, label="clean accuracy")
    if any("backdoor_success" in r for r in rows):
        ax_acc.plot(rounds, [r.get("backdoor_success", np.nan) for r in rows], marker="o", ms=3,
                    color="tab:red", label="backdoor success")  # fmt: skip
    ax_acc.set(xlabel="round", ylim=(0, 1), title="Under attack")
    for key, color in (("precision", "tab:green"), ("recall", "tab:purple")):
        values = [(r.get("defense") or {}).get(key) for r in rows]
        values = [np.nan if v is None else v for v in values]
        ax_det.plot(rounds, values, marker="o", ms=3, color=color, label=key)
    ax_det.set(xlabel="round", ylim=(-0.05, 1.05), title="Flagged clients vs true attackers")
    for ax in (ax_acc, ax_det):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def plot_matrix(
    values: dict[tuple[str, str], float | None], attacks: list[str], defenses: list[str],
    title: str, path: Path, cmap: str = "RdYlGn",
) -> Path:  # fmt: skip
    """A heatmap of one figure (final accuracy, backdoor success) over attack x defence."""
    grid = np.array(
        [[np.nan if values.get((a, d)) is None else values[(a, d)] for d in defenses]
         for a in attacks]
    )  # fmt: skip
    fig, ax = plt.subplots(figsize=(1.1 * len(defenses) + 2.5, 0.55 * len(attacks) + 1.8))
    image = ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(defenses)), defenses, rotation=30, ha="right")
    ax.set_yticks(range(len(attacks)), attacks)
    for i in range(len(attacks)):
        for j in range(len(defenses)):
            text = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set(xlabel="defense", ylabel="attack", title=title)
    fig.colorbar(image, ax=ax, fraction=0.04)
    return _save(fig, path)


def plot_continual(metrics: dict[str, Any], path: Path) -> Path:
    """The accuracy matrix R[i][j] (after task i, on task j) and per-task accuracy per round."""
    final = metrics.get("final") or {}
    matrix = np.array((final.get("continual") or {}).get("accuracy_matrix") or [[np.nan]])
    fig, (ax_m, ax_r) = plt.subplots(1, 2, figsize=(10, 3.8))
    image = ax_m.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if not np.isnan(matrix[i, j]):
                ax_m.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                          color="white" if matrix[i, j] < 0.6 else "black")  # fmt: skip
    ax_m.set(xlabel="evaluated on task", ylabel="after training task", title="Accuracy matrix")
    ax_m.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_m.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(image, ax=ax_m, fraction=0.04)
    rows = [r for r in metrics["rounds"] if "task_accuracy" in r]
    if rows:
        for j in range(len(rows[0]["task_accuracy"])):
            ax_r.plot([r["round"] for r in rows], [r["task_accuracy"][j] for r in rows],
                      marker="o", ms=3, label=f"task {j}")  # fmt: skip
        ax_r.legend(fontsize=7, loc="lower left")
    ax_r.set(xlabel="round", ylabel="test accuracy", ylim=(0, 1), title="Accuracy per task")
    ax_r.grid(alpha=0.3)
    ax_r.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def _as_picture(x: np.ndarray) -> np.ndarray:
    """One input as something imshow draws: (H, W) grey, (H, W, 3) colour, a flat strip."""
    if x.ndim == 3 and x.shape[0] == 1:
        return x[0]
    if x.ndim == 3 and x.shape[0] == 3:
        lo, hi = float(x.min()), float(x.max())
        return np.transpose((x - lo) / (hi - lo + 1e-12), (1, 2, 0))
    if x.ndim == 3:
        return x.mean(axis=0)
    return x.reshape(1, -1) if x.ndim == 1 else x


def plot_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, psnr: list[Any], title: str, path: Path
) -> Path:
    """Gradient inversion, side by side: each reconstruction under the training input it
    matches best, with the pair's PSNR."""
    k = len(reconstructions)
    fig, axes = plt.subplots(2, k, figsize=(1.3 * k + 0.8, 3.0), squeeze=False)
    for j in range(k):
        for row, images in enumerate((originals, reconstructions)):
            ax = axes[row][j]
            ax.imshow(_as_picture(images[j]), cmap="gray", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
        value = psnr[j]
        axes[1][j].set_xlabel("–" if value is None else f"{value:.1f} dB", fontsize=8)
    axes[0][0].set_ylabel("original", fontsize=8)
    axes[1][0].set_ylabel("reconstructed", fontsize=8)
    fig.suptitle(f"Gradient inversion: {title}", fontsize=9)
    return _save(fig, path)


def plot_roc(curves: dict[str, tuple[list[float], list[float]]], path: Path) -> Path:
    """Membership inference ROC curves on log-log axes (the low-FPR regime matters)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    floor = 1e-4
    for name, (fpr, tpr) in curves.items():
        ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=name)
    ax.plot([floor, 1], [floor, 1], ls="--", color="grey", lw=0.8, label="chance")
    ax.set(xscale="log", yscale="log", xlabel="false positive rate",
           ylabel="true positive rate", title="Membership inference (ROC)")  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_compare(curves: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """One figure per round of several runs, overlaid (``fedrobust compare``).

    Parameters
    ----------
    curves : list of dict
        One per run: ``label``, ``rounds`` and ``values`` (equal lengths), and optionally
        ``low`` and ``high``, a band drawn around the line (NaN: no band at that round).
    metric : str
        The figure's name, for the axis and the title.
    path : Path
        The PNG to write.

    Returns
    -------
    Path
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(10, 4.4))
    for index, curve in enumerate(curves):
        color = plt.get_cmap("tab10")(index % 10)
        ax.plot(curve["rounds"], curve["values"], marker="o", ms=3, color=color,
                label=curve["label"])  # fmt: skip
        if curve.get("low") is not None:
            ax.fill_between(curve["rounds"], curve["low"], curve["high"], color=color,
                            alpha=0.2, lw=0)  # fmt: skip
    ax.set(xlabel="round (0: initial model)", ylabel=metric, title=f"{metric} per round")
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)
