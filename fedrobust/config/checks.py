"""Checks that need the loaded data: what the scenario alone cannot tell.

The scenario validates without any data (:mod:`fedrobust.config.compat`); a source that is
not bundled has its class count, sizes and input shape known only once it is loaded. Every
entry point that runs a scenario (the CLI's ``run`` and ``deploy``, the ServerApp under
``flwr run``) calls :func:`check_with_data` on the federation before round 1, so they refuse
the same scenarios with the same messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrobust.errors import FedrobustError

if TYPE_CHECKING:
    from torch import nn

    from fedrobust.data.federated import Federation
    from fedrobust.scenario import Scenario


def check_with_data(scenario: Scenario, federation: Federation) -> str | None:
    """Try on ``federation`` what can fail on its data; return the privacy plan.

    In order: ``train.device`` must be visible to this process, the model must fit the
    data, the robust-evaluation attacks must run on it,
    the class ids an attack names must exist, SecAgg+'s modulus must hold the sum for
    this model's size, and the privacy settings must fit the clients' training sizes.

    Parameters
    ----------
    scenario : Scenario
        The validated scenario.
    federation : Federation
        Its data (``fedrobust.privacy.canaries.scenario_federation(scenario)``).

    Returns
    -------
    str or None
        The privacy plan to show before the run; None without differential privacy.

    Raises
    ------
    FedrobustError
        Naming the field the data refuses (``model.name``, ``attack.target_class``, ...).
    """
    _check_device(scenario)
    model = _check_model(scenario, federation)
    _check_robust_evaluation(scenario, federation, model)
    _check_attack_classes(scenario, federation.spec.num_classes)
    _check_secagg(scenario, model)
    _check_personalization(scenario, model)
    _check_semi_supervised(scenario, federation.spec.shape)
    return _privacy_plan(scenario, federation)


def _check_device(scenario: Scenario) -> None:
    """``train.device`` must be visible here, and fp16 needs it to be CUDA. It becomes
    this process's device (:func:`~fedrobust.train.device.use_device`), with
    ``train.deterministic``: the ServerApp checks before its first evaluation, which then
    runs on it."""
    from fedrobust.train.device import check_precision, set_deterministic, use_device

    check_precision(scenario.train.precision, use_device(scenario.train.device))
    set_deterministic(scenario.train.deterministic)  # before the server's first evaluation


def _check_model(scenario: Scenario, federation: Federation) -> nn.Module:
    from fedrobust.models.build import build_model

    try:
        model = build_model(scenario.model, federation.spec)
    except ValueError as exc:
        raise FedrobustError("model.name", str(exc)) from None
    if scenario.model.init_from is not None:  # the file exists, loads and fits the model
        from fedrobust.models.transfer import load_pretrained

        load_pretrained(model, scenario.model.init_from)
    return model


def _check_robust_evaluation(scenario: Scenario, federation: Federation, model: nn.Module) -> None:
    cfg = scenario.adversarial.evaluation
    if cfg is None:
        return
    from fedrobust.adversarial.evaluation import robust_accuracy

    try:  # one step on two examples: an attack unfit for this data fails here
        robust_accuracy(
            model, federation.x_test, federation.y_test, cfg.attacks, cfg.eps[:1], steps=1,
            norm=cfg.norm, num_samples=2, num_classes=federation.spec.num_classes,
        )  # fmt: skip
    except ValueError as exc:
        raise FedrobustError("adversarial.evaluation.attacks", str(exc)) from None


def _check_attack_classes(scenario: Scenario, num_classes: int) -> None:
    from fedrobust.robust.poisoning import check_classes

    try:
        check_classes(scenario.attack, num_classes)
    except ValueError as exc:
        field, what = str(exc).split(": ", 1)
        raise FedrobustError(field, what) from None


def _check_secagg(scenario: Scenario, model: nn.Module) -> None:
    cfg = scenario.privacy.secure_aggregation
    if not scenario.secagg_enabled() or cfg is None:
        return
    from fedrobust.secagg.config import resolve_params

    size = sum(p.numel() for p in model.state_dict().values() if p.is_floating_point())
    try:  # the modulus must hold the sum for this model's size
        resolve_params(cfg.params(1.0), scenario.sampled_per_round(), size)
    except ValueError as exc:
        field, _, what = str(exc).partition(": ")
        raise FedrobustError(f"privacy.secure_aggregation.{field}", what) from None


def _check_personalization(scenario: Scenario, model: nn.Module) -> None:
    if scenario.personalization is None:
        return
    from fedrobust.personalization.methods import private_keys

    try:  # the private layers must exist and leave a shared part
        private_keys(model, scenario.personalization)
    except ValueError as exc:
        field, _, what = str(exc).partition(": ")
        raise FedrobustError(field, what) from None


def _check_semi_supervised(scenario: Scenario, shape: tuple[int, ...]) -> None:
    """FixMatch's weak and strong views are image augmentations."""
    semi = scenario.train.semi_supervised
    if semi is not None and semi.method == "fixmatch" and len(shape) != 3:
        raise FedrobustError(
            "train.semi_supervised.method",
            f"fixmatch's weak and strong views augment images (C, H, W), but this data's "
            f"inputs are shaped {tuple(shape)}; use pseudo_label",
        )


def _privacy_plan(scenario: Scenario, federation: Federation) -> str | None:
    from fedrobust.privacy.accounting import check_privacy

    sizes = dict(enumerate(federation.train_sizes()))
    return check_privacy(scenario, sizes) or None
