"""The checks ``run`` and ``deploy`` make on the data before any process starts."""

from __future__ import annotations

from typing import Any

from fedrobust.errors import FedrobustError


def preflight(scenario: Any) -> tuple[Any, str | None]:
    """Load the data and try what can fail on it, before any process starts.

    Returns the federation and the privacy plan to print (None without DP).
    """
    from fedrobust.models.build import build_model
    from fedrobust.privacy.accounting import check_privacy
    from fedrobust.privacy.canaries import scenario_federation
    from fedrobust.robust.poisoning import check_classes
    from fedrobust.simulation import check_app_dir

    check_app_dir()
    fed = scenario_federation(scenario)  # data errors surface here, exit 2
    try:
        model = build_model(scenario.model, fed.spec)  # so does a model unfit for this data
    except ValueError as exc:
        raise FedrobustError("model.name", str(exc)) from None
    if scenario.adversarial.evaluation is not None:  # an attack unfit for this data fails here
        from fedrobust.adversarial.evaluation import robust_accuracy

        cfg = scenario.adversarial.evaluation
        try:
            robust_accuracy(
                model, fed.x_test, fed.y_test, cfg.attacks, cfg.eps[:1], steps=1,
                norm=cfg.norm, num_samples=2, num_classes=fed.spec.num_classes,
            )  # fmt: skip
        except ValueError as exc:
            raise FedrobustError("adversarial.evaluation.attacks", str(exc)) from None
    try:  # class ids an attack names must exist in this data
        check_classes(scenario.attack, fed.spec.num_classes)
    except ValueError as exc:
        field, what = str(exc).split(": ", 1)
        raise FedrobustError(field, what) from None
    if scenario.secagg_enabled():  # the modulus must hold the sum for this model's size
        from fedrobust.secagg import resolve_params

        cfg = scenario.privacy.secure_aggregation
        assert cfg is not None
        size = sum(p.numel() for p in model.state_dict().values() if p.is_floating_point())
        try:
            resolve_params(cfg.params(1.0), scenario.sampled_per_round(), size)
        except ValueError as exc:
            field, _, what = str(exc).partition(": ")
            raise FedrobustError(f"privacy.secure_aggregation.{field}", what) from None
    plan = check_privacy(scenario, {i: len(c.y_train) for i, c in enumerate(fed.clients)})
    return fed, plan
