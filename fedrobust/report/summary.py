"""Figures of repeated runs (one per seed): per-seed values, mean, sd and a 95 % CI.

:func:`summarize` takes each completed seed's ``final`` figures (metrics.json) and, for
every numeric figure, gives the per-seed values, the mean, the sample standard deviation
and the Student-t confidence interval (:func:`fedrobust.report.stats.mean_ci`). Nested
dicts become dotted keys (``robust_accuracy.pgd@0.1``, ``continual.forgetting``). Lists
(``per_class_recall``, the privacy ledger, ...), strings, booleans and non-finite numbers
are not figures and are skipped. A figure missing from some seeds is summarised over the
seeds that have it (``n`` says how many).

:func:`summary_markdown` renders that as a table (``mean ± half-width`` and the per-seed
values), the seeds that failed, and the command that reproduces it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fedrobust.report.stats import mean_ci

CONFIDENCE = 0.95


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric figures of ``doc`` under dotted keys.

    Parameters
    ----------
    doc : Mapping
        A run's ``final`` figures (or any nested dict).
    prefix : str
        Prepended to every key (``"robust_accuracy."`` for a nested dict).

    Returns
    -------
    dict
        ``{dotted key: float}``, for finite ``int`` and ``float`` values only (booleans,
        strings, lists, ``None``, NaN and infinities are skipped), in ``doc``'s order.
        ``per_client`` tables are left out: each seed splits the data anew, so client
        ``i`` of one seed is not client ``i`` of another.
    """
    figures: dict[str, float] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if key == "per_client":
            continue
        if isinstance(value, Mapping):
            figures.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                figures[name] = float(value)
    return figures


def summarize(finals: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-figure statistics over seeds.

    Parameters
    ----------
    finals : Mapping[int, Mapping]
        ``{seed: final}``: each completed seed's ``final`` figures.

    Returns
    -------
    dict
        ``{"seeds": [...], "confidence": 0.95, "figures": {key: stats}}`` where each
        ``stats`` is ``{"values": {seed: value}, "n", "mean", "sd", "half_width",
        "ci": [low, high]}``. With one value ``sd``, ``half_width`` and ``ci`` are
        ``None`` (no spread can be estimated). Figures keep the order in which they
        first appear (seeds in ascending order).
    """
    seeds = sorted(finals)
    flat = {seed: flatten(finals[seed]) for seed in seeds}
    keys: list[str] = []
    for seed in seeds:
        keys.extend(k for k in flat[seed] if k not in keys)
    figures: dict[str, Any] = {}
    for key in keys:
        values = {seed: flat[seed][key] for seed in seeds if key in flat[seed]}
        figures[key] = figure_stats(values)
    return {"seeds": seeds, "confidence": CONFIDENCE, "figures": figures}


def figure_stats(values: Mapping[int, float]) -> dict[str, Any]:
    """Mean, sample sd and the Student-t CI of one figure's ``{seed: value}``.

    Parameters
    ----------
    values : Mapping[int, float]
        At least one value.

    Returns
    -------
    dict
        ``values`` (as given), ``n``, ``mean``, ``sd`` (``n - 1`` in the denominator),
        ``half_width`` and ``ci`` (``[mean - half_width, mean + half_width]``); the last
        three are ``None`` for a single value.
    """
    series = list(values.values())
    mean, half = mean_ci(series, CONFIDENCE)
    n = len(series)
    if n < 2:
        sd = half_width = ci = None
    else:
        sd = math.sqrt(sum((v - mean) ** 2 for v in series) / (n - 1))
        half_width = half
        ci = [mean - half, mean + half]
    return {
        "values": dict(values),
        "n": n,
        "mean": mean,
        "sd": sd,
        "half_width": half_width,
        "ci": ci,
    }


def number(value: float | None) -> str:
    """A figure for a table: four significant digits, ``-`` for none."""
    return "-" if value is None else f"{value:.4g}"


def mean_pm(stats: Mapping[str, Any]) -> str:
    """``mean ± half-width`` of one figure's stats (just the mean for a single value)."""
    if stats["half_width"] is None:
        return number(stats["mean"])
    return f"{number(stats['mean'])} ± {number(stats['half_width'])}"


def summary_markdown(
    summary: Mapping[str, Any],
    title: str,
    command: str,
    failed: Mapping[int, str] | None = None,
) -> str:
    """The summary as markdown: one row per figure, the failed seeds, the command.

    Parameters
    ----------
    summary : Mapping
        What :func:`summarize` returned.
    title : str
        The heading (the scenario's name).
    command : str
        The command line that reproduces the summary.
    failed : Mapping[int, str], optional
        ``{seed: error}`` of the seeds that did not complete.

    Returns
    -------
    str
        The markdown text, ending with a newline.
    """
    seeds = list(summary["seeds"])
    failed = dict(failed or {})
    confidence = round(100 * summary["confidence"])
    lines = [
        f"# {title}: {len(seeds)} seeds",
        "",
        f"Mean ± half-width of the {confidence} % confidence interval (Student t, "
        "n - 1 degrees of freedom) over the completed seeds.",
        "",
    ]
    header = ["figure", f"mean ± {confidence} % CI", "n", *[f"seed {s}" for s in seeds]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---|---:|---:|" + "---:|" * len(seeds))
    for key, stats in summary["figures"].items():
        cells = [key, mean_pm(stats), str(stats["n"])]
        cells.extend(number(stats["values"].get(seed)) for seed in seeds)
        lines.append("| " + " | ".join(cells) + " |")
    if failed:
        lines.extend(["", "Failed seeds (not in the table):", ""])
        lines.extend(f"- seed {seed}: {failed[seed]}" for seed in sorted(failed))
    lines.extend(["", "Reproduce:", "", "```bash", command, "```"])
    return "\n".join(lines) + "\n"
