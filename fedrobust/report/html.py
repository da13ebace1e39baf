"""``report.html``: one self-contained page per run (plots embedded as PNG data URIs).

Sections: summary, scenario, learning curves, per-client label histograms, per-client
accuracy spread, per-class recall, privacy, adversarial robustness, continual learning,
secure aggregation, poisoning, rounds table. A feature adds a section by appending a
:class:`Section` in :func:`build_sections`.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedrobust.extras import install_hint, missing_modules
from fedrobust.report.metrics import read_metrics
from fedrobust.rundir import RunDir

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f5f6f8;color:#222}
header{background:#1f3b57;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.85}
main{max-width:1100px;margin:0 auto;padding:16px 32px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:16px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{font-size:17px;margin:0 0 12px} img{max-width:100%}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 10px;border-bottom:1px solid #eee;
text-align:right} th{background:#fafafa} td:first-child,th:first-child{text-align:left}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{background:#eef3f8;border-radius:6px;
padding:10px 14px;min-width:130px} .card b{display:block;font-size:20px}
pre{background:#fafafa;padding:10px;border-radius:6px;overflow:auto;font-size:12px;max-height:360px}
.status-failed{color:#b00020} .status-completed{color:#0a7d32}
"""


@dataclass(frozen=True)
class Section:
    """One titled block of the page; ``body`` is trusted HTML built here."""

    title: str
    body: str


def embed_image(fig_path: Path) -> str:
    data = base64.b64encode(fig_path.read_bytes()).decode()
    return f'<img alt="{html.escape(fig_path.stem)}" src="data:image/png;base64,{data}">'


def figure(plot: str, data: Any, path: Path) -> str:
    """``fedrobust.report.plots.<plot>(data, path)``, embedded; without matplotlib (the
    ``report`` extra) a line that says what to install instead."""
    if missing_modules("matplotlib"):
        return f"<p><i>figure not drawn: {html.escape(install_hint('report'))}</i></p>"
    from fedrobust.report import plots

    return embed_image(getattr(plots, plot)(data, path))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def html_table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def build_sections(doc: dict[str, Any], figures: Path) -> list[Section]:
    """The report's sections for the metrics document ``doc``; plots are drawn in ``figures``."""
    sections: list[Section] = []
    final = doc.get("final") or (doc["rounds"][-1] if doc["rounds"] else {})
    cards = [
        ("status", doc["status"]),
        ("rounds", len(doc["rounds"])),
        ("final accuracy", final.get("accuracy")),
        ("balanced accuracy", final.get("balanced_accuracy")),
        ("final loss", final.get("loss")),
    ]
    if "model_round" in final:  # the figures above are this model's (model.pt)
        cards.append(("model kept", f"round {final['model_round']}"))
    if final.get("stopped_early") is not None:
        cards.append(("early stopping", f"best round {final['best_round']}"))
    if doc.get("data"):
        cards.append(("measured label noise", doc["data"]["noise_rate"]))
    body = (
        '<div class="cards">'
        + "".join(
            f'<div class="card">{html.escape(k)}<b>{_fmt(v) if v is not None else "–"}</b></div>'
            for k, v in cards
        )
        + "</div>"
    )
    if doc.get("error"):
        body += f'<p class="status-failed">{html.escape(doc["error"])}</p>'
    sections.append(Section("Summary", body))

    if doc["rounds"]:
        sections.append(
            Section("Learning curves", figure("plot_curves", doc, figures / "curves.png"))
        )
    if doc.get("data"):
        hist = figure("plot_label_histograms", doc["data"], figures / "label_histograms.png")
        sections.append(
            Section(
                "Clients: label distribution",
                _unassigned_line(doc["data"]) + hist
                + "<details><summary>sizes</summary>" + _sizes_table(doc["data"]) + "</details>",
            )
        )  # fmt: skip
    if any(r.get("clients") for r in doc["rounds"]):
        spread = figure("plot_client_spread", doc, figures / "client_spread.png")
        sections.append(Section("Clients: accuracy spread", spread))
    if any(r.get("global_local") for r in doc["rounds"]) or final.get("global_local"):
        sections.append(_fairness_section(doc, final, figures))
    if final.get("per_class_recall"):
        recall = [[i, r] for i, r in enumerate(final["per_class_recall"])]
        sections.append(
            Section("Per-class recall (final model)", html_table(["class", "recall"], recall))
        )
    if any("epsilon" in r for r in doc["rounds"]):
        sections.append(_privacy_section(doc, final, figures))
    if final.get("robust_accuracy"):
        table = html_table(["attack@eps", "accuracy"], sorted(final["robust_accuracy"].items()))
        plot = figure("plot_robustness", doc, figures / "robustness.png")
        sections.append(Section("Adversarial robustness (final model)", plot + table))
    if any("task_accuracy" in r for r in doc["rounds"]):
        cont = final.get("continual") or {}
        rows = [[k, cont.get(k)] for k in ("average_accuracy", "forgetting", "bwt")]
        body = figure("plot_continual", doc, figures / "continual.png")
        sections.append(Section("Continual learning", body + html_table(["", ""], rows)))
    if any("secure_aggregation" in r for r in doc["rounds"]):
        sections.append(_secagg_section(doc))
    if any("malicious" in r or "defense" in r for r in doc["rounds"]):
        sections.append(_poisoning_section(doc, final, figures))
    attacks = RunDir(figures).privacy_attack_results
    if attacks.is_file():
        sections.append(_privacy_attacks_section(json.loads(attacks.read_text()), attacks.parent))
    explained = RunDir(figures).explain_results
    if explained.is_file():
        sections.append(_explain_section(json.loads(explained.read_text()), explained.parent))
    if doc["rounds"]:
        keys = ["round", "accuracy", "loss", "balanced_accuracy", "lr", "aggregated", "seconds"]
        if "epsilon" in doc["rounds"][-1]:
            keys.insert(4, "epsilon")
        rows = [
            [r.get(k, "") for k in keys] + [sum(r.get("dropped", {}).values())]
            for r in doc["rounds"]
        ]
        sections.append(Section("Rounds", html_table([*keys, "dropped"], rows)))
    scenario = yaml.safe_dump(doc["scenario"], sort_keys=False)
    sections.append(Section("Scenario", f"<pre>{html.escape(scenario)}</pre>"))
    return sections


def _sizes_table(data: dict[str, Any]) -> str:
    """One row per client; for many clients (``clients_summary``) the spread over them."""
    if "clients" in data:
        rows = [[c["client"], c["train"], c["val"], c["noise_rate"]] for c in data["clients"]]
        return html_table(["client", "train", "val", "measured noise"], rows)
    summary = data["clients_summary"]
    keys = ("train", "val", "noise_rate", "classes_held", "largest_class_share")
    stats = ("min", "p10", "median", "p90", "max", "mean")
    rows = [[key, *(summary[key][s] for s in stats)] for key in keys]
    return html_table([f"over {summary['count']} clients", *stats], rows)


def _fairness_section(doc: dict[str, Any], final: dict[str, Any], figures: Path) -> Section:
    plot = figure("plot_fairness", doc, figures / "fairness.png")
    rows = [
        [name, s.get("mean"), s.get("worst_10pct"), s.get("std"), s.get("clients")]
        for name, key in (("global model", "global_local"), ("personal models", "personalized"))
        if (s := final.get(key))
    ]
    table = html_table(["final model", "mean", "worst 10 %", "std", "clients"], rows)
    return Section("Clients: local test accuracy (fairness)", plot + table)


def _privacy_section(doc: dict[str, Any], final: dict[str, Any], figures: Path) -> Section:
    dp = doc["scenario"].get("privacy", {}).get("dp", {})
    rows = [
        ["mode", f"{dp.get('mode')}-level DP"],
        ["epsilon (max over clients)", final.get("epsilon")],
        ["delta", f"{final.get('delta', dp.get('delta')):g}"],
        ["accountant", dp.get("accountant")],
    ]
    if "privacy_valid" in final:
        valid = "yes" if final["privacy_valid"] else "NO: reproducible noise, regenerable"
        rows.append(["guarantee holds", valid])
        rows.append(["assumes", final.get("privacy_assumptions", "")])
    sigmas = final.get("noise_multipliers")
    if sigmas:
        values = list(sigmas.values())
        rows.append(["noise multiplier", f"{min(values):.4g} .. {max(values):.4g}"])
    refused = sum(r.get("dropped", {}).get("budget_exhausted", 0) for r in doc["rounds"])
    rows.append(["rounds refused (budget spent)", refused])
    body = html_table(["", ""], rows) + figure("plot_privacy", doc, figures / "privacy.png")
    audit = final.get("audit")
    if audit:
        body += "<h3>Canary audit (Steinke, Nasr &amp; Jagielski 2023)</h3>" + html_table(
            ["canaries", "guesses", "correct", "epsilon lower bound", "confidence", "claimed"],
            [[audit["num_canaries"], audit["num_guesses"], audit["num_correct"],
              audit["epsilon_lower_bound"], audit["confidence"], audit.get("claimed_epsilon")]],
        )  # fmt: skip
    body += (
        "<p>The ledger in metrics.json (<code>final.privacy_ledger</code>) lists every "
        "client's releases; Opacus's accountant fed it gives these epsilons.</p>"
    )
    return Section("Privacy", body)


def _privacy_attacks_section(results: dict[str, Any], folder: Path) -> Section:
    body = ""
    rows = results.get("inversion") or []
    if rows:
        body += "<h3>Gradient inversion by the server</h3>" + html_table(
            ["round", "update", "examples behind it", "method", "images",
             "PSNR mean (dB)", "PSNR max", "SSIM mean", "labels right"],
            [[r["round"], "client " + str(r["clients"][0]) if r["kind"] == "client"
              else f"aggregate of {len(r['clients'])}", r["num_examples"], r["method"],
              r["images"], r["psnr_mean"], r["psnr_max"], r["ssim_mean"],
              f"{r['labels_correct']}/{r['images']}"] for r in rows if "error" not in r],
        )  # fmt: skip
        body += "".join(
            f"<p>round {r['round']}, clients {r['clients']}: {html.escape(r['error'])}</p>"
            for r in rows if "error" in r
        )  # fmt: skip
        body += "".join(
            embed_image(folder / r["picture"])
            for r in rows
            if "picture" in r and (folder / r["picture"]).is_file()
        )
    found = results.get("membership")
    if found:
        body += (
            f"<h3>Membership inference on the final model</h3><p>{found['members']} members "
            f"(clients' training data) against {found['non_members']} non-members (the test "
            f"set); LiRA with {found['shadow_models']} shadow models.</p>"
        )
        body += html_table(
            ["attack", "ROC AUC", "TPR at 0.1 % FPR", "TPR at 1 % FPR"],
            [[name, a["auc"], a["tpr_at_0.1%_fpr"], a["tpr_at_1%_fpr"]]
             for name, a in found["attacks"].items()],
        )  # fmt: skip
        if (folder / found["picture"]).is_file():
            body += embed_image(folder / found["picture"])
    return Section("Privacy attacks", body)


def _explain_section(results: dict[str, Any], folder: Path) -> Section:
    body = (
        "<p>Attributions of the final model on test examples drawn per class; the maps "
        "are for the true class, each normalised by its total |attribution| "
        "(<code>explain/results.json</code>, the maps in <code>explain/*.npz</code>).</p>"
    )
    rows = []
    for name, r in results.items():
        complete = r.get("completeness") or {}
        trigger = r.get("trigger") or {}
        rows.append(
            [name, r["samples"], r["accuracy"], complete.get("mean_abs_delta", "–"),
             complete.get("relative_error", "–"), trigger.get("fraction_triggered", "–"),
             trigger.get("fraction_clean", "–"), trigger.get("trigger_area", "–")]
        )  # fmt: skip
    body += html_table(
        ["method", "examples", "accuracy", "IG |delta| mean", "IG relative error",
         "|attr.| in trigger (triggered)", "(clean)", "trigger's share of input"],
        rows,
    )  # fmt: skip
    for name, r in results.items():
        pictures = [r.get("classes_picture"), r.get("examples_picture")]
        pictures.append((r.get("trigger") or {}).get("picture"))
        body += f"<h3>{html.escape(name)}</h3>" + "".join(
            embed_image(folder / p) for p in pictures if p and (folder / p).is_file()
        )
    return Section("Interpretability (attribution maps)", body)


def _poisoning_section(doc: dict[str, Any], final: dict[str, Any], figures: Path) -> Section:
    scenario = doc["scenario"]
    attack = scenario.get("attack", {}).get("kind", "none")
    defense = scenario.get("defense", {}).get("name", "fedavg")
    head = f"<p>attack <b>{html.escape(attack)}</b>, defense <b>{html.escape(defense)}</b>"
    if final.get("backdoor_success") is not None:
        head += f"; final backdoor success {_fmt(final['backdoor_success'])}"
    rows = []
    for r in doc["rounds"]:
        d = r.get("defense") or {}
        rows.append(
            [r["round"], r["accuracy"], r.get("backdoor_success", ""),
             ", ".join(map(str, r.get("malicious", []))), ", ".join(map(str, d.get("flagged", []))),
             "" if d.get("precision") is None else d["precision"],
             "" if d.get("recall") is None else d["recall"]]
        )  # fmt: skip
    table = html_table(
        ["round", "accuracy", "backdoor success", "attackers", "flagged", "precision", "recall"],
        rows,
    )
    return Section(
        "Poisoning",
        head + "</p>" + figure("plot_poisoning", doc, figures / "poisoning.png") + table,
    )


def _secagg_section(doc: dict[str, Any]) -> Section:
    stages = ["setup", "share_keys", "collect_masked_vectors", "unmask"]
    rows = []
    for r in doc["rounds"]:
        secure = r.get("secure_aggregation")
        if not secure:
            continue
        survivors = [secure["survivors"].get(st, "") for st in stages]
        rows.append(
            [r["round"], secure["sampled"], *survivors, secure["contributors"],
             secure["clipped"] if secure["clipped"] is not None else "",
             secure["seconds"], secure["failure"] or ""]
        )  # fmt: skip
    header = ["round", "sampled", "after setup", "after share_keys", "after masked vectors",
              "after unmask", "in the sum", "clipped", "seconds", "no aggregate"]  # fmt: skip
    body = (
        "<p>SecAgg+: clients still in the protocol after each stage; the server saw only "
        "the masked sum of the contributors' updates.</p>" + html_table(header, rows)
    )
    return Section("Secure aggregation", body)


def write_page(path: Path, title: str, subtitle: str, sections: list[Section]) -> Path:
    """Write a self-contained report page of ``sections`` atomically."""
    blocks = "".join(
        f"<section><h2>{html.escape(s.title)}</h2>{s.body}</section>" for s in sections
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><h1>{html.escape(title)}</h1>"
        f"<p>{subtitle}</p></header><main>{blocks}</main></body></html>"
    )
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def write_report(run_dir: Path) -> Path:
    """(Re)build ``run_dir/report.html`` from ``run_dir/metrics.json``."""
    doc = read_metrics(run_dir)
    sections = build_sections(doc, RunDir(run_dir).figures)
    status = html.escape(doc["status"])
    subtitle = (
        f"status: <span class='status-{status}'>{status}</span> · {html.escape(str(run_dir))}"
    )
    title = f"fedrobust report: {doc['scenario']['name']}"
    return write_page(RunDir(run_dir).report, title, subtitle, sections)


def _unassigned_line(data: dict[str, Any]) -> str:
    """A warning line when the split left training samples (or whole classes) to no client."""
    unassigned = data.get("unassigned") or 0
    if not unassigned:
        return ""
    unused = data.get("unused_classes") or []
    classes = f" (every sample of classes {', '.join(map(str, unused))})" if unused else ""
    return (
        f'<p class="status-failed">The split gave {unassigned} training samples{classes} to '
        "no client: no client trained on them (data.partition).</p>"
    )
