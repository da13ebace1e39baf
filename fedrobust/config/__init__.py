"""Scenario configuration shared by every feature's section.

- :mod:`~fedrobust.config.base`: the strict :class:`~fedrobust.config.base.Section` base and
  the field-error helpers.
- :mod:`~fedrobust.config.run`: simulation resources and output location.
- :mod:`~fedrobust.config.compat`: which features refuse which (cross-section rules).
- :mod:`~fedrobust.config.checks`: the checks that need the loaded data.

Each feature package owns its own section in its ``config.py``; :mod:`fedrobust.scenario`
composes them. Nothing here imports :mod:`fedrobust.scenario` at import time.
"""
