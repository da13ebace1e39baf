"""Explain one run: attribution maps of the model it keeps, on the server's test data.

Both the server hook (after the last round, when ``evaluation.explain`` asks) and
``fedrobust explain`` call :func:`explain_run`. It draws ``samples`` test examples
(stratified per class, seeded), attributes the predicted and the true class of each,
and writes ``explain/results.json`` (one entry per method; another method's entry from
an earlier call is kept), the method's figures and its maps (``<method>-maps.npz``).

Integrated gradients is checked for completeness: the attributions of an input sum to
``f(x) - f(baseline)`` of the target logit, up to Captum's convergence delta. When the
scenario has a backdoor attack, the inputs of the other classes are also explained with
the trigger stamped in, and the share of the attribution that falls inside the trigger
is compared with the same share on the clean inputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fedrobust.data import Federation
from fedrobust.explain.attributions import (
    Method,
    attribute_batches,
    create_method,
    require_captum,
)
from fedrobust.explain.config import ExplainConfig
from fedrobust.explain.maps import (
    SAMPLE_STREAM,
    class_means,
    display,
    mask_fraction,
    stratified_indices,
    trigger_mask,
)
from fedrobust.extras import require
from fedrobust.rundir import RunDir, read_json_results, write_atomic
from fedrobust.scenario import Scenario
from fedrobust.seeds import Stream, stream
from fedrobust.train.threads import torch_threads

log = logging.getLogger("fedrobust.explain")


def explain_run(
    run_dir: Path, scenario: Scenario, fed: Federation, model: nn.Module, cfg: ExplainConfig
) -> dict[str, Any]:
    """Explain ``model`` (the run's kept model) by ``cfg.method``; write the results.

    Parameters
    ----------
    run_dir : Path
        The run directory; the files go to its ``explain/``.
    scenario : Scenario
        The run's scenario (seed, threads, the backdoor attack if any).
    fed : Federation
        Its federation: the server's test set is what is explained.
    model : nn.Module
        The model the run keeps.
    cfg : ExplainConfig
        What to explain and how.

    Returns the headline figures of every method explained so far (``final.explain``).

    Raises
    ------
    FedrobustError
        When Captum is not installed.
    """
    require_captum()
    folder = RunDir(run_dir).explain
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    with torch_threads(scenario.simulation.cpus_per_client), torch.random.fork_rng():
        torch.manual_seed(scenario.seed)  # GradientSHAP's draws
        figures = explain_model(scenario, fed, model, cfg, folder)
    results = read_results(run_dir)
    results[cfg.method] = figures
    text = json.dumps(results, indent=2, allow_nan=False)
    write_atomic(RunDir(run_dir).explain_results, lambda handle: handle.write(text.encode()))
    return summarize(results)


def explain_model(
    scenario: Scenario, fed: Federation, model: nn.Module, cfg: ExplainConfig, folder: Path
) -> dict[str, Any]:
    """The figures of one method (results.json's entry); draws its figures in ``folder``."""
    require("attribution maps (their figures)", "matplotlib")
    from fedrobust.explain.plots import plot_class_maps, plot_examples

    chosen = stratified_indices(fed.y_test, cfg.samples, scenario.seed)
    x = torch.from_numpy(np.ascontiguousarray(fed.x_test[chosen]))
    y = torch.from_numpy(fed.y_test[chosen]).long()
    method = create_method(cfg, _background(fed, cfg, scenario.seed))
    predicted = predict(model, x)
    for_predicted = attribute_batches(method, model, x, predicted)
    for_true = for_predicted.maps.clone()
    wrong = predicted != y
    if wrong.any():
        for_true[wrong] = attribute_batches(method, model, x[wrong], y[wrong]).maps
    maps_pred, maps_true = for_predicted.maps.numpy(), for_true.numpy()
    labels = y.numpy()
    name = cfg.method
    means = class_means(display(maps_true), labels, fed.spec.num_classes)
    plot_class_maps(
        means, fed.classes, f"{scenario.name}: mean {name} map of each class (true class)",
        folder / f"{name}-classes.png",
    )  # fmt: skip
    shown = _example_rows(labels, cfg.examples)
    pred_np = predicted.numpy()
    if len(shown):
        plot_examples(
            x.numpy()[shown], display(maps_pred)[shown],
            [f"true {labels[i]}, pred {pred_np[i]}" for i in shown],
            f"{scenario.name}: {name} for the predicted class", folder / f"{name}-examples.png",
        )  # fmt: skip
    figures: dict[str, Any] = {
        "method": name,
        "samples": len(chosen),
        "accuracy": float((~wrong).double().mean()),
        "per_class": {
            str(c): {"samples": int((labels == c).sum()), "accuracy": _acc(pred_np, labels, c)}
            for c in sorted(means)
        },
        "classes_picture": f"{name}-classes.png",
        "examples_picture": f"{name}-examples.png" if len(shown) else None,
        "settings": cfg.model_dump(),
    }
    if for_predicted.delta is not None:
        figures["completeness"] = completeness(model, x, method, predicted, for_predicted)
    arrays = {"indices": chosen, "predicted": pred_np, "labels": labels,
              "maps_predicted": maps_pred, "maps_true": maps_true}  # fmt: skip
    if scenario.attack.kind == "backdoor":
        trigger, extra = backdoor_view(scenario, model, method, x, y, maps_pred, folder, cfg)
        figures["trigger"] = trigger
        arrays.update(extra)
    np.savez_compressed(folder / f"{name}-maps.npz", **arrays)
    return figures


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The model's predicted class of each input."""
    return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def completeness(
    model: nn.Module, x: torch.Tensor, method: Method, target: torch.Tensor, found: Any
) -> dict[str, float]:
    """Integrated gradients' completeness on ``x``: each input's attributions summed
    against ``f(x) - f(baseline)`` of its ``target`` logit, and Captum's delta."""
    with torch.no_grad():
        baseline = method.baseline(x)
        rows = torch.arange(len(x))
        difference = model(x)[rows, target] - model(baseline)[rows, target]
    sums = found.maps.reshape(len(x), -1).sum(1)
    gap = (sums - difference).abs()
    delta = found.delta.abs()
    scale = float(difference.abs().mean())
    return {
        "sum_of_attributions_mean": float(sums.mean()),
        "output_difference_mean": float(difference.mean()),
        "mean_abs_gap": float(gap.mean()),
        "mean_abs_delta": float(delta.mean()),
        "max_abs_delta": float(delta.max()),
        "relative_error": float(gap.mean()) / scale if scale > 0 else 0.0,
    }


def backdoor_view(
    scenario: Scenario,
    model: nn.Module,
    method: Method,
    x: torch.Tensor,
    y: torch.Tensor,
    maps_clean: np.ndarray,
    folder: Path,
    cfg: ExplainConfig,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Explain the inputs not of the target class again with the trigger stamped in:
    the share of |attribution| inside the trigger, triggered against clean (both for
    the predicted class), the figure, and the arrays for the maps file."""
    from fedrobust.explain.plots import plot_trigger
    from fedrobust.robust.poisoning import stamp_trigger

    attack = scenario.attack
    keep = (y != attack.target_class).numpy()
    stamped = torch.from_numpy(stamp_trigger(attack, x.numpy()[keep]))
    predicted = predict(model, stamped)
    maps = attribute_batches(method, model, stamped, predicted).maps.numpy()
    mask = trigger_mask(attack, tuple(x.shape[1:]))
    triggered, clean = mask_fraction(maps, mask), mask_fraction(maps_clean[keep], mask)
    picture = f"{cfg.method}-trigger.png"
    shown = np.arange(min(4, len(stamped)))
    plot_trigger(
        triggered, clean, float(mask.mean()), stamped.numpy()[shown], display(maps)[shown],
        f"{scenario.name}: {cfg.method} inside the trigger ({mask.mean():.1%} of the input)",
        folder / picture,
    )  # fmt: skip
    figures = {
        "inputs": int(keep.sum()),
        "target_class": attack.target_class,
        "trigger_area": float(mask.mean()),
        "fraction_triggered": float(triggered.mean()) if len(triggered) else None,
        "fraction_clean": float(clean.mean()) if len(clean) else None,
        "backdoor_success": float((predicted == attack.target_class).double().mean())
        if len(predicted)
        else None,
        "picture": picture,
    }
    return figures, {"maps_triggered": maps, "trigger_mask": mask}


def read_results(run_dir: Path) -> dict[str, Any]:
    """``explain/results.json`` of a run, or an empty dict."""
    return read_json_results(RunDir(run_dir).explain_results)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of each method in ``results`` (``final.explain``)."""
    summary: dict[str, Any] = {}
    for name, found in results.items():
        row: dict[str, Any] = {"samples": found["samples"], "accuracy": found["accuracy"]}
        if found.get("completeness"):
            row["mean_abs_delta"] = found["completeness"]["mean_abs_delta"]
            row["relative_error"] = found["completeness"]["relative_error"]
        if found.get("trigger"):
            row["trigger_fraction_triggered"] = found["trigger"]["fraction_triggered"]
            row["trigger_fraction_clean"] = found["trigger"]["fraction_clean"]
        summary[name] = row
    return summary


def _background(fed: Federation, cfg: ExplainConfig, seed: int) -> torch.Tensor:
    """The server's inputs the baselines come from: its test set, or (GradientSHAP) a
    seeded draw of ``cfg.background`` of them."""
    x = fed.x_test
    if cfg.method == "gradient_shap" and cfg.background < len(x):
        rng = stream(seed, Stream.HOLDOUT, SAMPLE_STREAM, 1)
        x = x[np.sort(rng.choice(len(x), size=cfg.background, replace=False))]
    return torch.from_numpy(np.ascontiguousarray(x))


def _example_rows(labels: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` rows to draw: the first of each class, then the next ones."""
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return np.array((firsts + rest)[:count], dtype=int)


def _acc(predicted: np.ndarray, labels: np.ndarray, c: int) -> float:
    return float((predicted[labels == c] == c).mean())
