"""``fedrobust compare``: runs and repeats side by side on one page.

Each directory is a run directory (``metrics.json``) or a ``fedrobust repeat`` directory
(one run per seed in ``seed-<s>/metrics.json``; ``summary.json`` is not needed, so a
repeat still under way and a ``matrix --seeds`` cell compare too). A failed or running
run is compared as far as it got: its figures are those of its last round.

A repeat's figures and curve come from its completed seeds (from all its seeds when none
completed): a table cell is the mean ± the half-width of the 95 % Student-t interval
(:func:`fedrobust.report.summary.summarize`), the curve the mean per round with the
interval as a band (:func:`fedrobust.report.stats.mean_ci`).

The scenario differences are the dotted keys of the runs' scenarios (a repeat's: its
first seed's, with ``seed`` replaced by the list of its seeds) whose values are not the
same in every run; ``output.dir`` (where a run was written) is left out.

:func:`load_comparison` reads the directories, :func:`write_comparison` writes
``compare.html``, ``compare.png`` and ``compare.md``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedrobust.errors import FedrobustError
from fedrobust.extras import require
from fedrobust.report.html import Section, embed_image, html_table, write_page
from fedrobust.report.metrics import read_metrics
from fedrobust.report.stats import mean_ci
from fedrobust.report.summary import CONFIDENCE, flatten, mean_pm, summarize
from fedrobust.rundir import RunDir
from fedrobust.scenario import flatten_scenario

COMPARE_HTML = "compare.html"
COMPARE_PNG = "compare.png"
COMPARE_MD = "compare.md"
SEED_PREFIX = "seed-"
# The final figures every table shows (the chosen metric, epsilon and wall seconds join them).
TABLE_FIGURES = ("rounds_completed", "accuracy", "balanced_accuracy", "loss")
IGNORED_SCENARIO_PREFIX = "output."  # where a run is written and tracked, not what it ran
MISSING = "–"


@dataclass
class Entry:
    """One compared directory.

    Attributes
    ----------
    name : str
        Its name on the page: the directory's name (with its parents' where two are alike).
    path : Path
        The directory.
    kind : str
        ``"run"`` (a run directory) or ``"repeat"`` (one run per ``seed-<s>`` directory).
    runs : dict
        ``{seed: metrics document}`` in ascending seed order; one for a run directory.
    """

    name: str
    path: Path
    kind: str
    runs: dict[int, dict[str, Any]]

    @property
    def used(self) -> list[int]:
        """The seeds behind the figures and the curve: the completed ones, else all."""
        done = [s for s, doc in self.runs.items() if doc["status"] == "completed"]
        return done or list(self.runs)

    @property
    def figures(self) -> dict[str, dict[str, Any]]:
        """``{dotted key: stats}`` of the final figures over :attr:`used` (see
        :func:`fedrobust.report.summary.figure_stats`)."""
        return summarize({s: run_final(self.runs[s]) for s in self.used})["figures"]

    @property
    def status(self) -> str:
        """``completed``, ``failed`` or ``running``; for a repeat, how many seeds completed
        and how the others stand."""
        if self.kind == "run":
            return next(iter(self.runs.values()))["status"]
        done = sum(doc["status"] == "completed" for doc in self.runs.values())
        text = f"{done}/{len(self.runs)} seeds completed"
        others = [f"seed {s} {doc['status']}" for s, doc in self.runs.items()
                  if doc["status"] != "completed"]  # fmt: skip
        return text + (f" ({', '.join(others)})" if others else "")


@dataclass
class Comparison:
    """What ``fedrobust compare`` shows.

    Attributes
    ----------
    entries : list of Entry
        The directories, in the order given.
    metric : str
        The per-round figure the curves show.
    keys : list of str
        The final figures of the table, in column order.
    scenarios : list of dict
        Each entry's flattened scenario (:func:`entry_scenario`).
    differing : list of str
        The scenario keys whose values are not the same in every entry.
    """

    entries: list[Entry]
    metric: str
    keys: list[str]
    scenarios: list[dict[str, Any]]
    differing: list[str]


def load_entry(path: Path) -> tuple[str, dict[int, dict[str, Any]]]:
    """The kind (``run`` or ``repeat``) and the metrics documents of one directory.

    Raises
    ------
    FedrobustError
        Naming the directory when it is neither a run nor a repeat directory, or naming
        the metrics.json that is unreadable or malformed.
    """
    if not path.is_dir():
        raise FedrobustError(str(path), "no such directory")
    if RunDir(path).metrics.is_file():
        doc = read_metrics(path)
        seed = doc["scenario"].get("seed")
        return "run", {seed if isinstance(seed, int) else 0: doc}
    seed_dirs: dict[int, Path] = {}
    for child in path.glob(f"{SEED_PREFIX}*"):
        suffix = child.name.removeprefix(SEED_PREFIX)
        if suffix.isdigit() and RunDir(child).metrics.is_file():
            seed_dirs[int(suffix)] = child
    if not seed_dirs:
        raise FedrobustError(
            str(path),
            "not a run directory (no metrics.json) nor a repeat directory "
            f"(no {SEED_PREFIX}<s>/metrics.json)",
        )
    return "repeat", {seed: read_metrics(seed_dirs[seed]) for seed in sorted(seed_dirs)}


def entry_names(paths: Sequence[Path]) -> list[str]:
    """Each directory's name; where names repeat, as many parent names as tell them apart
    (``a/run``, ``b/run``)."""
    depth = [1] * len(paths)
    while True:
        names = ["/".join(p.parts[-d:]) for p, d in zip(paths, depth, strict=True)]
        alike = [i for i, name in enumerate(names)
                 if names.count(name) > 1 and depth[i] < len(paths[i].parts)]  # fmt: skip
        if not alike:
            return names
        for i in alike:
            depth[i] += 1


def run_final(doc: dict[str, Any]) -> dict[str, Any]:
    """A run's final figures: ``final``, or, for a failed or running run, its last
    round's figures and ``rounds_completed``."""
    final = doc.get("final")
    if isinstance(final, dict) and final:
        return final
    rows = doc["rounds"]
    return {**(rows[-1] if rows else {}), "rounds_completed": len(rows)}


def round_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's per-round rows: the initial model's (round 0) when recorded, then the rounds."""
    initial = doc.get("initial")
    return ([initial] if isinstance(initial, dict) else []) + doc["rounds"]


def available_metrics(entries: Sequence[Entry]) -> list[str]:
    """Every numeric per-round figure (dotted keys) some run has, sorted."""
    keys = {key for entry in entries for doc in entry.runs.values()
            for row in round_rows(doc) for key in flatten(row)}  # fmt: skip
    keys.discard("round")
    return sorted(keys)


def entry_scenario(entry: Entry) -> dict[str, Any]:
    """The flattened scenario of an entry (a repeat's first seed's, ``seed`` being the list
    of its seeds), without the ``output`` section (:data:`IGNORED_SCENARIO_PREFIX`)."""
    flat = flatten_scenario(entry.runs[min(entry.runs)]["scenario"])
    if entry.kind == "repeat":
        flat["seed"] = ", ".join(str(s) for s in entry.runs)
    return {k: v for k, v in flat.items() if not k.startswith(IGNORED_SCENARIO_PREFIX)}


def differing_keys(scenarios: Sequence[dict[str, Any]]) -> list[str]:
    """The keys whose values (a missing key counts as a value) are not all the same, in
    the order they first appear, each top-level section's together."""
    missing = object()
    keys = list(dict.fromkeys(key for flat in scenarios for key in flat))
    sections = list(dict.fromkeys(key.split(".")[0] for key in keys))
    keys.sort(key=lambda key: sections.index(key.split(".")[0]))  # a section's keys together
    return [key for key in keys
            if any(flat.get(key, missing) != scenarios[0].get(key, missing)
                   for flat in scenarios)]  # fmt: skip


def load_comparison(paths: Sequence[Path], metric: str = "accuracy") -> Comparison:
    """Read the directories and work out what to compare.

    Parameters
    ----------
    paths : sequence of Path
        Run directories and repeat directories, at least two, each once.
    metric : str
        A per-round figure: a numeric key of the ``rounds`` rows (dotted for a nested
        one, ``robust_accuracy.pgd@0.1``).

    Returns
    -------
    Comparison

    Raises
    ------
    FedrobustError
        Fewer than two directories, one given twice, a directory that is neither a run
        nor a repeat directory, a malformed metrics.json (each named), or a ``--metric``
        no run has in its rounds (listing those they have).
    """
    if len(paths) < 2:
        raise FedrobustError("DIR", f"give at least 2 directories to compare, got {len(paths)}")
    resolved = [Path(p).expanduser().resolve() for p in paths]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise FedrobustError(str(paths[index]), "given twice")
    loaded = [load_entry(Path(path).expanduser()) for path in paths]  # errors name them as given
    names = entry_names(resolved)
    entries = [Entry(name, path, kind, runs) for name, path, (kind, runs)
               in zip(names, resolved, loaded, strict=True)]  # fmt: skip
    available = available_metrics(entries)
    if metric not in available:
        listed = ", ".join(available) or "none (no run has finished a round)"
        raise FedrobustError(
            "--metric", f"no run has {metric!r} in its rounds; they have: {listed}"
        )
    keys = list(TABLE_FIGURES)
    if metric not in (*keys, "epsilon", "wall_seconds"):
        keys.append(metric)
    if metric == "epsilon" or any("epsilon" in entry.figures for entry in entries):
        keys.append("epsilon")
    keys.append("wall_seconds")
    scenarios = [entry_scenario(entry) for entry in entries]
    return Comparison(entries, metric, keys, scenarios, differing_keys(scenarios))


def curve(entry: Entry, metric: str) -> dict[str, Any] | None:
    """The entry's ``metric`` per round for :func:`fedrobust.report.plots.plot_compare`
    (a repeat: the mean over :attr:`Entry.used` seeds with the 95 % interval as a band, each
    round over the seeds that have it), or None when none of its rounds has it."""
    series: dict[int, list[float]] = {}
    for seed in entry.used:
        for row in round_rows(entry.runs[seed]):
            value = flatten(row).get(metric)
            if value is not None and isinstance(row.get("round"), int):
                series.setdefault(row["round"], []).append(value)
    if not series:
        return None
    rounds = sorted(series)
    if entry.kind == "run":
        return {"label": entry.name, "rounds": rounds, "values": [series[r][0] for r in rounds]}
    stats = [mean_ci(series[r], CONFIDENCE) for r in rounds]
    seeds = len(entry.used)
    if seeds > 1:
        label = f"{entry.name} (mean of {seeds} seeds, band: {round(100 * CONFIDENCE)} % CI)"
    else:
        label = f"{entry.name} (1 seed)"
    return {
        "label": label,
        "rounds": rounds,
        "values": [mean for mean, _ in stats],
        "low": [mean - half for mean, half in stats],
        "high": [mean + half for mean, half in stats],
    }


def final_table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the final figures: one row per entry; a repeat's cells are
    ``mean ± half-width`` (95 % Student t) over its seeds, ``–`` where it lacks a figure."""
    header = ["run", "status", "seeds", *comparison.keys]
    rows = []
    for entry in comparison.entries:
        figures = entry.figures
        cells = [mean_pm(figures[key]) if key in figures else MISSING
                 for key in comparison.keys]  # fmt: skip
        rows.append([entry.name, entry.status, str(len(entry.used)), *cells])
    return header, rows


def scenario_value(flat: dict[str, Any], key: str) -> str:
    """One scenario value for a table: strings as they are, the rest as JSON; ``–`` when
    the scenario lacks the key."""
    if key not in flat:
        return MISSING
    value = flat[key]
    return value if isinstance(value, str) else json.dumps(value)


def differences_table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the scenario differences: one row per differing key."""
    header = ["scenario field", *[entry.name for entry in comparison.entries]]
    rows = [[key, *[scenario_value(flat, key) for flat in comparison.scenarios]]
            for key in comparison.differing]  # fmt: skip
    return header, rows


def problems(comparison: Comparison) -> list[str]:
    """One line per run that recorded an error."""
    lines = []
    for entry in comparison.entries:
        for seed, doc in entry.runs.items():
            if doc.get("error"):
                where = entry.name if entry.kind == "run" else f"{entry.name} seed {seed}"
                lines.append(f"{where}: {doc['error']}")
    return lines


def markdown_table(header: list[str], rows: list[list[str]], left: int) -> list[str]:
    """A markdown table's lines: the first ``left`` columns left-aligned, the others
    right-aligned."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "---|" * left + "---:|" * (len(header) - left)
    return [line(header), rule, *[line(r) for r in rows]]


CI_NOTE = (
    "A repeat directory's figures are the mean ± the half-width of the 95 % confidence "
    "interval (Student t, n - 1 degrees of freedom) over its completed seeds (over all its "
    "seeds when none completed); a failed or running run's figures are its last round's."
)


def comparison_markdown(comparison: Comparison) -> str:
    """``compare.md``: the final figures and the scenario differences."""
    names = ", ".join(entry.name for entry in comparison.entries)
    lines = [f"# fedrobust compare: {names}", "", "## Final figures", "", CI_NOTE, ""]
    lines += markdown_table(*final_table(comparison), left=2)
    errors = problems(comparison)
    if errors:
        lines += ["", "Errors:", ""] + [f"- {line}" for line in errors]
    lines += ["", "## Scenario differences", ""]
    if comparison.differing:
        header, rows = differences_table(comparison)
        lines += markdown_table(header, rows, left=len(header))
    else:
        lines.append("The scenarios are the same.")
    lines += ["", "## Directories", ""]
    lines += [f"- {entry.name}: {entry.kind} `{entry.path}`" for entry in comparison.entries]
    return "\n".join(lines) + "\n"


def write_comparison(comparison: Comparison, out: Path) -> list[Path]:
    """Write ``compare.png``, ``compare.html`` (the plot embedded) and ``compare.md`` in
    ``out`` (created).

    Returns
    -------
    list of Path
        The three files, html first.

    Raises
    ------
    FedrobustError
        Naming ``out`` when it exists and is not a directory.
    """
    if out.exists() and not out.is_dir():
        raise FedrobustError(str(out), "not a directory")
    out.mkdir(parents=True, exist_ok=True)
    metric = comparison.metric
    curves = {entry.name: curve(entry, metric) for entry in comparison.entries}
    require("fedrobust compare", "matplotlib")
    from fedrobust.report.plots import plot_compare

    png = plot_compare([c for c in curves.values() if c], metric, out / COMPARE_PNG)
    lacking = [name for name, c in curves.items() if c is None]
    note = f"<p>Without {html.escape(metric)}: {html.escape(', '.join(lacking))}.</p>"
    errors = "".join(
        f'<p class="status-failed">{html.escape(line)}</p>' for line in problems(comparison)
    )
    table = f"<p>{html.escape(CI_NOTE)}</p>" + html_table(*final_table(comparison)) + errors
    sections = [
        Section(f"{metric} per round", embed_image(png) + (note if lacking else "")),
        Section("Final figures", table),
    ]
    if comparison.differing:
        differences = html_table(*differences_table(comparison))
    else:
        differences = "<p>The scenarios are the same.</p>"
    sections.append(Section("Scenario differences", differences))
    directories = [[e.name, e.kind, str(e.path)] for e in comparison.entries]
    sections.append(Section("Directories", html_table(["run", "kind", "directory"], directories)))
    names = ", ".join(entry.name for entry in comparison.entries)
    page = write_page(out / COMPARE_HTML, "fedrobust compare", html.escape(names), sections)
    md = out / COMPARE_MD
    md.write_text(comparison_markdown(comparison), encoding="utf-8")
    return [page, png, md]
