"""What ``continual.ewc.aggregate`` refuses in other sections (called from
:func:`fedrobust.config.compat.check`; kept here because compat.py is at its size cap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedrobust.config.base import field_error

if TYPE_CHECKING:
    from fedrobust.config.view import Scenario


def check_fisher_aggregation(scenario: Scenario) -> None:
    """Refuse server-side Fisher aggregation where its records would leak or cannot travel.

    Raises
    ------
    FieldError
        ``continual.ewc.aggregate`` with SecAgg+ (the Fisher records travel beside the
        masked update, unmasked) or with client-level DP (the Fisher is a function of the
        client's data that no noise protects).
    """
    cl = scenario.continual
    if cl is None or not cl.ewc.aggregate:
        return
    if scenario.secagg_enabled():
        raise field_error(
            "continual.ewc.aggregate",
            "each client's Fisher would reach the server unmasked beside its masked update "
            "(privacy.secure_aggregation); keep ewc.aggregate false",
        )
    if scenario.privacy.dp.mode == "client":
        raise field_error(
            "continual.ewc.aggregate",
            "each client's Fisher is a function of its data that client-level DP's noise "
            "does not cover (privacy.dp.mode: client), so the printed epsilon would be "
            "wrong; keep ewc.aggregate false",
        )
