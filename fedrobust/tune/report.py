"""What a study found: the trials table, ``best.yaml``, the plots and ``report.md``.

Everything here is rebuilt from the study's storage, so a resumed study's report covers
every trial, old and new.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fedrobust.tune.space import build, show, with_values

if TYPE_CHECKING:
    import optuna

    from fedrobust.tune.study import Search

TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
REPORT_MD = "report.md"
PLOTS = {
    "history.png": "optimisation history",
    "importance.png": "parameter importance",
    "intermediate.png": "validation figure per round",
}
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}


def trial_rows(study: optuna.Study, search: Search) -> list[dict[str, Any]]:
    """One row per trial: number, state, score, rounds reported, values, time, error.

    ``score`` is the trial's validation figure (complete trials only); ``last_reported``
    the last round's figure it reported (where a pruned trial stood).
    """
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        values = t.user_attrs.get("values", {})
        steps = sorted(t.intermediate_values)
        took = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        rows.append(
            {
                "trial": t.number,
                "state": STATES.get(t.state.name, t.state.name.lower()),
                "score": t.value,
                "last_reported": t.intermediate_values[steps[-1]] if steps else None,
                "rounds": len(steps),
                **{path: values.get(path) for path in search.space},
                "seconds": None if took is None else round(took, 1),
                "run_dir": t.user_attrs.get("run_dir", ""),
                "error": t.user_attrs.get("error", ""),
            }
        )
    return rows


def write_trials_csv(rows: list[dict[str, Any]], search: Search) -> Path:
    """``trials.csv``: the rows, ``score`` named after the metric, values as JSON."""
    path = search.out / TRIALS_CSV
    columns = list(rows[0]) if rows else ["trial", "state", "score"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([search.metric if c == "score" else c for c in columns])
        for row in rows:
            writer.writerow(
                [
                    "" if row[c] is None else json.dumps(row[c]) if c in search.space else row[c]
                    for c in columns
                ]  # fmt: skip
            )
    return path


def table_cells(row: dict[str, Any], search: Search) -> list[str]:
    """A row as the printed table and report.md show it (the header: :func:`table_header`)."""
    value = row["score"] if row["score"] is not None else row["last_reported"]
    shown = "" if value is None else f"{value:.4f}"
    return [
        str(row["trial"]),
        row["state"],
        shown,
        str(row["rounds"]),
        *["" if row[p] is None else show(row[p]) for p in search.space],
        "" if row["seconds"] is None else f"{row['seconds']:.1f}",
    ]


def table_header(search: Search, short: bool = False) -> list[str]:
    """The columns of :func:`table_cells` (a pruned trial's figure is its last round's);
    ``short``: each path by its last part where that is unique (``lr``), for a console."""
    paths = list(search.space)
    if short:
        lasts = [p.rsplit(".", 1)[-1] for p in paths]
        paths = [last if lasts.count(last) == 1 else path
                 for path, last in zip(paths, lasts, strict=True)]  # fmt: skip
    return ["trial", "state", search.metric, "rounds", *paths, "seconds"]


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The complete trial with the best score, or None when no trial completed."""
    try:
        return study.best_trial
    except ValueError:
        return None


def write_best(study: optuna.Study, search: Search) -> Path | None:
    """``best.yaml``: the scenario file with the best trial's values and without ``tune``.

    Returns None (and writes nothing) when no trial completed. The scenario is
    validated first (a FedrobustError if not: it ran, so only a changed file fails).
    """
    best = best_trial(study)
    if best is None:
        return None
    values = best.user_attrs["values"]
    build(search.raw, values)  # it must validate, as it ran
    header = (
        f"# fedrobust tune {search.source}: trial {best.number} of {len(study.trials)}, "
        f"{search.metric} {best.value:.4f} (validation)\n"
        f"# searched: {', '.join(search.space)}; run it: fedrobust run {search.out / BEST_YAML}\n"
    )
    path = search.out / BEST_YAML
    text = yaml.safe_dump(with_values(search.raw, values), sort_keys=False)
    path.write_text(header + text, encoding="utf-8")
    return path


def write_plots(study: optuna.Study, out: Path, metric: str) -> dict[str, str]:
    """Optuna's matplotlib plots as PNG; ``{file: why it is missing}`` for those not drawn.

    The history needs one complete trial, the importance two (with different values),
    the per-round figure one reported round.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as plots
    except ImportError as exc:
        return dict.fromkeys(PLOTS, f"matplotlib is not installed ({exc})")
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    missing: dict[str, str] = {}
    draw = {
        "history.png": (plots.plot_optimization_history, 1, "one completed trial"),
        "importance.png": (plots.plot_param_importances, 2, "two completed trials"),
        "intermediate.png": (plots.plot_intermediate_values, 0, ""),
    }
    for name, (plot, needed, need_text) in draw.items():
        (out / name).unlink(missing_ok=True)
        if len(complete) < needed:
            missing[name] = f"needs at least {need_text}"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's "experimental" notices
                axes = plot(study)
            if name != "importance.png":  # Optuna's labels say "Objective" and "Step"
                axes.set_ylabel(metric)
                axes.set_xlabel("round" if name == "intermediate.png" else "trial")
            axes.figure.savefig(out / name, dpi=110, bbox_inches="tight")
            plt.close(axes.figure)
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as exc:
            missing[name] = f"could not be drawn ({exc})"
            plt.close("all")
    return missing


def write_report(
    study: optuna.Study,
    search: Search,
    rows: list[dict[str, Any]],
    settings: str,
    missing: dict[str, str],
) -> Path:
    """``report.md``: the settings, the best trial, the table and the plots.

    Parameters
    ----------
    settings : str
        The sampler and pruner, as one line.
    missing : dict
        The plots not drawn and why (from :func:`write_plots`).
    """
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "failed")}
    lines = [
        f"# fedrobust tune: {search.name}",
        "",
        f"Scenario `{search.source}`; {len(rows)} trials "
        f"({', '.join(f'{n} {s}' for s, n in counts.items())}); {settings}.",
        f"Score: `{search.metric}` ({search.direction}d), the clients' validation results of "
        "the model each run kept; the test set chose nothing.",
        "",
    ]
    lines += _best_lines(study, search)
    header = table_header(search)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(table_cells(r, search)) + " |" for r in rows]
    failed = [r for r in rows if r["error"]]
    if failed:
        lines += ["", "Failed trials:", ""]
        lines += [f"- trial {r['trial']}: {r['error']}" for r in failed]
    lines.append("")
    for name, title in PLOTS.items():
        if name in missing:
            lines.append(f"_No {title} plot: {missing[name]}._")
        else:
            lines.append(f"![{title}]({name})")
        lines.append("")
    path = search.out / REPORT_MD
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _best_lines(study: optuna.Study, search: Search) -> list[str]:
    best = best_trial(study)
    if best is None:
        return ["No trial completed: there is no best scenario yet.", ""]
    values = best.user_attrs["values"]
    lines = [
        f"**Best: trial {best.number}**, {search.metric} {best.value:.4f}: "
        + ", ".join(f"`{p}` = {show(v)}" for p, v in values.items())
        + f". Its scenario: `{BEST_YAML}` (`fedrobust run {search.out / BEST_YAML}`).",
    ]
    test = _test_accuracy(search.out / best.user_attrs.get("run_dir", ""))
    if test is not None:
        lines.append(
            f"Test accuracy of its kept model: {test:.4f} (measured on the test split, which "
            "played no part in the choice)."
        )
    return [*lines, ""]


def _test_accuracy(run_dir: Path) -> float | None:
    from fedrobust.launch import read_json
    from fedrobust.rundir import RunDir

    doc = read_json(RunDir(run_dir).metrics) or {}
    value = (doc.get("final") or {}).get("accuracy")
    return float(value) if isinstance(value, (int, float)) else None
