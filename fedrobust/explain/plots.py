"""The figures of ``fedrobust explain``: per-class mean maps, single examples, the trigger.

Maps of images are heatmaps (red: for the class, blue: against it, one colour scale per
figure); maps of flat inputs are bar charts over the features.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from fedrobust.report.plots import _as_picture, _save  # noqa: E402

HEAT = "RdBu_r"


def _scale(maps: list[np.ndarray]) -> float:
    """One symmetric colour limit for every map of a figure."""
    top = max((float(np.abs(m).max()) for m in maps), default=0.0)
    return top if top > 0 else 1.0


def _draw_map(ax: Axes, values: np.ndarray, limit: float) -> None:
    """One attribution map: a heatmap (2-D) or bars over the features (1-D)."""
    if values.ndim == 1:
        colours = np.where(values >= 0, "tab:red", "tab:blue")
        ax.bar(np.arange(len(values)), values, color=colours, width=0.9)
        ax.set_ylim(-limit * 1.05, limit * 1.05)
        ax.axhline(0, color="grey", lw=0.6)
        ax.tick_params(labelsize=6)
        return
    ax.imshow(values, cmap=HEAT, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_class_maps(means: dict[int, np.ndarray], names: list[str], title: str, path: Path) -> Path:
    """One panel per class: the mean normalised attribution for the true class over the
    explained examples of that class."""
    classes = sorted(means)
    flat = next(iter(means.values())).ndim == 1
    cols = min(len(classes), 3 if flat else 5)
    rows = -(-len(classes) // cols)
    size = (3.4, 1.8) if flat else (1.7, 1.8)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size[0] * cols + 0.6, size[1] * rows + 0.6), squeeze=False
    )
    limit = _scale([means[c] for c in classes])
    for ax, c in zip(axes.flat, classes, strict=False):
        _draw_map(ax, means[c], limit)
        ax.set_title(names[c] if c < len(names) else str(c), fontsize=8)
    for ax in list(axes.flat)[len(classes) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_examples(
    inputs: np.ndarray, maps: np.ndarray, captions: list[str], title: str, path: Path
) -> Path:
    """Single examples side by side: each input (top) over its attribution map (bottom).

    Parameters
    ----------
    inputs : np.ndarray
        The inputs, (N, *input shape).
    maps : np.ndarray
        Their maps as :func:`fedrobust.explain.maps.display` gives them.
    captions : list[str]
        One caption per example ("true 3, predicted 3").
    """
    k = len(inputs)
    fig, axes = plt.subplots(2, k, figsize=(1.6 * k + 0.6, 3.6), squeeze=False)
    limit = _scale(list(maps))
    for j in range(k):
        top = axes[0][j]
        if inputs[j].ndim == 1:
            top.bar(np.arange(len(inputs[j])), inputs[j], color="grey", width=0.9)
            top.tick_params(labelsize=6)
        else:
            top.imshow(_as_picture(inputs[j]), cmap="gray", aspect="auto")
            top.set_xticks([])
            top.set_yticks([])
        top.set_title(captions[j], fontsize=7)
        _draw_map(axes[1][j], maps[j], limit)
    axes[0][0].set_ylabel("input", fontsize=8)
    axes[1][0].set_ylabel("attribution", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_trigger(
    triggered: np.ndarray,
    clean: np.ndarray,
    area: float,
    inputs: np.ndarray,
    maps: np.ndarray,
    title: str,
    path: Path,
) -> Path:
    """The backdoor view: the share of |attribution| inside the trigger on triggered and
    clean inputs (mean and each example; the dashed line: the trigger's share of the
    input, what a map that ignores the trigger gets), and triggered examples with their
    maps (predicted class)."""
    k = len(inputs)
    fig = plt.figure(figsize=(3.4 + 1.5 * max(k, 1), 3.6))
    grid = fig.add_gridspec(2, 1 + max(k, 1), width_ratios=[2.2] + [1] * max(k, 1))
    ax = fig.add_subplot(grid[:, 0])
    rng = np.random.default_rng(0)  # jitter of the points only
    for pos, (values, colour) in enumerate(((clean, "tab:blue"), (triggered, "tab:red"))):
        ax.bar(pos, float(np.mean(values)) if len(values) else 0.0, color=colour, alpha=0.35)
        ax.scatter(pos + rng.uniform(-0.25, 0.25, len(values)), values, s=6, color=colour)
    ax.axhline(area, ls="--", color="grey", lw=0.8, label="trigger's share of the input")
    ax.set_xticks([0, 1], ["clean", "triggered"])
    ax.set(ylim=(0, 1), ylabel="share of |attribution| in the trigger")
    ax.legend(fontsize=7, loc="upper left")
    limit = _scale(list(maps))
    for j in range(k):
        top, bottom = fig.add_subplot(grid[0, 1 + j]), fig.add_subplot(grid[1, 1 + j])
        if inputs[j].ndim == 1:
            top.bar(np.arange(len(inputs[j])), inputs[j], color="grey", width=0.9)
        else:
            top.imshow(_as_picture(inputs[j]), cmap="gray", aspect="auto")
        top.set_xticks([])
        top.set_yticks([])
        _draw_map(bottom, maps[j], limit)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
