"""What the head methods refuse of other sections (``config/compat.py`` runs it).

``wa`` rescales rows of the aggregate, a post-processing of whatever the server holds: it
composes with SecAgg+ (the server holds the sum), client-level DP (post-processing of a
noised release), every defence and every strategy. ``class_aware`` reads each client's
head rows and class counts and replaces the strategy's average of the head with its own,
so it needs the individual replies, an averaging strategy and no client-level DP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrobust.config.base import field_error

if TYPE_CHECKING:
    from fedrobust.config.view import Scenario

#: The strategies whose server update is the clients' weighted average of the model.
AVERAGING_STRATEGIES = ("fedavg", "fedprox")


def check_head_methods(scenario: Scenario) -> None:
    """Refuse ``class_aware`` beside what it cannot work with.

    Raises
    ------
    FieldError
        Naming ``continual.method``.
    """
    cl = scenario.continual
    if cl is None or "class_aware" not in cl.methods():
        return
    if scenario.secagg_enabled():
        why = (
            "reads each client's head rows and class counts, which "
            "privacy.secure_aggregation hides (the server sees only the sum); wa acts on "
            "the aggregate and composes with it"
        )
    elif scenario.defense.name != "fedavg":
        why = (
            f"replaces the head of the aggregate with its class-weighted average of the "
            f"replies, which would undo defense.name '{scenario.defense.name}' on the "
            "head (a client's counts would buy its rows their weight); use defense fedavg"
        )
    elif scenario.privacy.dp.mode == "client":
        why = (
            "re-weights the head rows by per-class counts the clients report unnoised, "
            "so client-level DP's noise (calibrated for the uniform average of clipped "
            "updates) and its epsilon would no longer hold (privacy.dp.mode: client)"
        )
    elif scenario.strategy.name not in AVERAGING_STRATEGIES:
        why = (
            f"replaces the head with a weighted average of the clients' rows, the server "
            f"update of {' and '.join(AVERAGING_STRATEGIES)} only; strategy.name "
            f"'{scenario.strategy.name}' updates the model otherwise"
        )
    else:
        return
    raise field_error("continual.method", f"class_aware {why}")
