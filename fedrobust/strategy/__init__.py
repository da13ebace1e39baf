"""Server strategies: the ``strategy`` section and the registry that builds Flower's strategies.

- :mod:`~fedrobust.strategy.config`: :class:`~fedrobust.strategy.config.StrategyConfig`.
- :mod:`~fedrobust.strategy.registry`: name -> builder, ``build_strategy`` and the
  strategy state a checkpoint keeps.
"""
