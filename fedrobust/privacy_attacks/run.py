"""Run the privacy attacks against one run: the server's inversion of the updates it
recorded, a model user's membership inference on the final model.

Both the server hook (after the last round, when ``evaluation.privacy_attacks`` asks) and
``fedrobust privacy-attack`` call :func:`attack_run`; it writes
``privacy_attacks/results.json`` and the pictures the report shows.

Ground truth: the attacks are scored against the scenario's own partitions (simulation,
or ``fedrobust deploy`` without ``--data-dir``): the reconstructions against the
training inputs of the clients behind the update, the membership guesses against the
clients' training data (members) and the test set the run held out (non-members).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fedrobust.data import Federation
from fedrobust.errors import FedrobustError
from fedrobust.extras import require
from fedrobust.models.build import build_model
from fedrobust.privacy_attacks.config import PrivacyAttacksConfig
from fedrobust.privacy_attacks.updates import RecordedUpdate
from fedrobust.rundir import RunDir, read_json_results, write_atomic
from fedrobust.scenario import Scenario
from fedrobust.train import round_lr
from fedrobust.train.threads import torch_threads

log = logging.getLogger("fedrobust.privacy_attacks")

ROC_PICTURE = "membership-roc.png"


def invert_update(
    scenario: Scenario,
    fed: Federation,
    update: RecordedUpdate,
    cfg: PrivacyAttacksConfig,
    images: int,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Reconstruct ``images`` training inputs from ``update``, as the server can.

    Returns the figures (PSNR and SSIM of each reconstruction's best match among the
    training inputs of the clients behind the update), the reconstructions and their
    best matches (for the picture).

    Raises
    ------
    FedrobustError
        When the update carries no gradient of the model's last layer (a private head
        under personalization): the labels cannot be read off it.
    """
    from fedrobust.privacy_attacks.inversion import (
        INVERSION_METHODS,
        infer_labels,
        pseudo_gradient,
    )
    from fedrobust.privacy_attacks.similarity import best_matches

    model = build_model(scenario.model, fed.spec)
    model.load_state_dict(update.before)
    gradient = pseudo_gradient(model, update.before, update.after)
    if all(float(g.abs().sum()) == 0.0 for g in gradient[-2:]):
        raise FedrobustError(
            "personalization.method",
            f"{update.label}: the update holds no change of the last layer (it stays on "
            "the client), so the server has no gradient to read the labels from",
        )
    originals = np.concatenate([fed.clients[c].x_train for c in update.clients])
    originals_y = np.concatenate([fed.clients[c].y_train for c in update.clients])
    low, high = _bounds(fed)
    inv = cfg.inversion
    mean = [g / _lr_steps(scenario, update) for g in gradient]  # ~ the batch's mean gradient
    with torch.no_grad():  # the server's own data stands in for the client's predictions
        predicted = torch.softmax(model.eval()(torch.from_numpy(np.asarray(fed.x_test))), dim=1)
        predicted = predicted.mean(0)
    try:
        labels = infer_labels(mean, model, images, fed.spec.num_classes, mean_prediction=predicted)
    except ValueError as exc:  # no linear classifier layer to read the labels from
        raise FedrobustError("model.name", f"{update.label}: {exc}") from None
    if inv.method == "dlg":  # DLG's distance needs the gradient's scale
        gradient = mean
    attack = INVERSION_METHODS[inv.method](
        model,
        iterations=inv.iterations,
        restarts=inv.restarts,
        lr=inv.lr,
        tv=inv.tv,
        bounds=(low, high),
        seed=scenario.seed + update.round,
    )
    result = attack.reconstruct(gradient, labels, tuple(fed.spec.shape))
    recon = result.images.detach().cpu().numpy()
    matches = best_matches(recon, originals, high - low)
    psnrs = [m["psnr"] for m in matches]
    ssims = [m["ssim"] for m in matches]
    figures: dict[str, Any] = {
        **_identity(update),
        "method": inv.method,
        "images": len(matches),
        "psnr": [_finite(p) for p in psnrs],
        "ssim": ssims,
        "psnr_mean": _finite(float(np.mean(psnrs))),
        "psnr_max": _finite(float(np.max(psnrs))),
        "ssim_mean": None if None in ssims else float(np.mean(ssims)),  # type: ignore[arg-type]
        "labels": [int(v) for v in result.labels],
        "labels_correct": sum(
            int(v) == int(originals_y[m["index"]])
            for v, m in zip(result.labels, matches, strict=True)
        ),
        "matching_loss": result.loss,
        "picture": f"{update.stem}.png",
    }
    best = originals[[m["index"] for m in matches]]
    return figures, recon, best


def membership(
    scenario: Scenario, fed: Federation, model: nn.Module, cfg: PrivacyAttacksConfig
) -> dict[str, Any]:
    """Membership inference on ``model``: the loss attack, and LiRA with shadow models
    trained by the scenario's recipe. Returns each attack's figures and ROC curve."""
    from fedrobust.privacy_attacks.membership import membership_inference

    rng = np.random.default_rng(scenario.seed)
    x_in = np.concatenate([c.x_train for c in fed.clients])
    y_in = np.concatenate([c.y_train for c in fed.clients])
    n = min(cfg.membership.samples, len(y_in), len(fed.y_test))
    members = rng.choice(len(y_in), size=n, replace=False)
    outside = rng.choice(len(fed.y_test), size=n, replace=False)
    shadows = cfg.membership.shadow_models
    results = membership_inference(
        model,
        (x_in[members], y_in[members]),
        (fed.x_test[outside], fed.y_test[outside]),
        train_fn=_shadow_trainer(scenario, fed, cfg) if shadows >= 2 else None,
        shadow_models=shadows,
        seed=scenario.seed,
    )
    return {
        "members": n,
        "non_members": n,
        "shadow_models": shadows,
        "attacks": {
            name: {**r.summary(), "fpr": _curve(r.fpr), "tpr": _curve(r.tpr)}
            for name, r in results.items()
        },
    }


def attack_run(
    run_dir: Path,
    scenario: Scenario,
    fed: Federation,
    model: nn.Module | None,
    cfg: PrivacyAttacksConfig,
    *,
    attacks: list[str],
    updates: list[RecordedUpdate] = (),  # type: ignore[assignment]
    images: int | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Run ``attacks`` against the run in ``run_dir``; write results.json and pictures.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    scenario, fed : Scenario, Federation
        The run's scenario and its federation (the ground truth).
    model : nn.Module or None
        The model the run keeps (membership).
    cfg : PrivacyAttacksConfig
        How the attacks run.
    attacks : list[str]
        ``inversion`` and/or ``membership``.
    updates : list[RecordedUpdate]
        The recorded updates to invert.
    images : int, optional
        Inputs per inversion; default ``cfg.images_for`` the update.
    strict : bool
        Raise the error of an update that cannot be attacked (the command line) instead
        of recording it in its row (the end of a run, which must not fail for it).

    Returns the summary figures (``final.privacy_attacks``); results.json keeps the
    other attack's results from an earlier call.
    """
    require("privacy attacks (their figures)", "matplotlib")
    from fedrobust.report.plots import plot_reconstructions, plot_roc

    folder = RunDir(run_dir).privacy_attacks
    folder.mkdir(parents=True, exist_ok=True)
    results = read_results(run_dir)
    with torch_threads(scenario.simulation.cpus_per_client):  # small ops: fewer threads win
        if "inversion" in attacks:
            rows = []
            for update in updates:
                try:
                    figures, recon, best = invert_update(
                        scenario, fed, update, cfg, images or cfg.images_for(update.num_examples)
                    )
                except FedrobustError as exc:
                    if strict:
                        raise
                    rows.append({**_identity(update), "error": f"{exc.where}: {exc.what}"})
                    continue
                plot_reconstructions(
                    best, recon, figures["psnr"], update.label, folder / figures["picture"]
                )
                log.info("inversion %s: PSNR %.2f dB", update.label, figures["psnr_mean"] or -1)
                rows.append(figures)
            results["inversion"] = rows
        if "membership" in attacks:
            assert model is not None
            found = membership(scenario, fed, model, cfg)
            curves = {name: (a["fpr"], a["tpr"]) for name, a in found["attacks"].items()}
            plot_roc(curves, folder / ROC_PICTURE)
            found["picture"] = ROC_PICTURE
            results["membership"] = found
    text = json.dumps(results, indent=2, allow_nan=False)
    write_atomic(RunDir(run_dir).privacy_attack_results, lambda handle: handle.write(text.encode()))
    return summarize(results)


def read_results(run_dir: Path) -> dict[str, Any]:
    """``privacy_attacks/results.json`` of a run, or an empty dict."""
    return read_json_results(RunDir(run_dir).privacy_attack_results)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of ``results`` (what ``final.privacy_attacks`` holds)."""
    summary: dict[str, Any] = {}
    rows = [r for r in results.get("inversion") or [] if "error" not in r]
    if rows:
        psnr = [r["psnr_mean"] for r in rows if r["psnr_mean"] is not None]
        ssim = [r["ssim_mean"] for r in rows if r["ssim_mean"] is not None]
        summary["inversion_psnr"] = float(np.mean(psnr)) if psnr else None
        summary["inversion_psnr_max"] = max(
            (r["psnr_max"] for r in rows if r["psnr_max"] is not None), default=None
        )
        summary["inversion_ssim"] = float(np.mean(ssim)) if ssim else None
        summary["inversion_updates"] = len(rows)
    found = results.get("membership")
    if found:
        for name, attack in found["attacks"].items():
            summary[f"membership_{name}_auc"] = attack["auc"]
            summary[f"membership_{name}_tpr_at_1%_fpr"] = attack["tpr_at_1%_fpr"]
    return summary


def _shadow_trainer(scenario: Scenario, fed: Federation, cfg: PrivacyAttacksConfig) -> Any:
    """``(x, y, seed) -> model``: the scenario's model trained centrally by its recipe."""
    from fedrobust.train.local import local_train

    train = scenario.train
    epochs = cfg.membership.shadow_epochs or max(
        1, round(train.rounds * train.local_epochs * train.fraction_train)
    )
    recipe = train.model_copy(update={"local_epochs": epochs})

    def fit(x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = build_model(scenario.model, fed.spec)
        local_train(model, x, y, train=recipe, num_classes=fed.spec.num_classes, seed=seed)
        return model.eval()

    return fit


def _identity(update: RecordedUpdate) -> dict[str, Any]:
    return {
        "round": update.round,
        "kind": update.kind,
        "clients": list(update.clients),
        "num_examples": update.num_examples,
    }


def _lr_steps(scenario: Scenario, update: RecordedUpdate) -> float:
    """The round's learning rate times the local steps behind one client's update (an
    aggregate: of the average client): the update over it estimates the mean gradient."""
    train = scenario.train
    lr = round_lr(train.lr_schedule, train.optimizer.lr, update.round, train.rounds)
    per_client = update.num_examples / max(1, len(update.clients))
    steps = train.local_epochs * max(1, math.ceil(per_client / train.batch_size))
    return lr * steps


def _bounds(fed: Federation) -> tuple[float, float]:
    """The input range the attacker assumes (the data's normalisation is public)."""
    x = fed.clients[0].x_train if fed.clients else fed.x_test
    return float(min(x.min(), fed.x_test.min())), float(max(x.max(), fed.x_test.max()))


def _finite(value: float) -> float | None:
    """JSON has no infinity: a perfect reconstruction's PSNR is capped at 100 dB."""
    if value != value:
        return None
    return float(min(value, 100.0))


def _curve(values: np.ndarray, points: int = 400) -> list[float]:
    """A ROC curve's coordinates, thinned to at most ``points`` (for results.json)."""
    values = np.asarray(values, dtype=float)
    if len(values) > points:
        values = values[np.unique(np.linspace(0, len(values) - 1, points).round().astype(int))]
    return [round(float(v), 6) for v in values]
