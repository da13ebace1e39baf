"""Server strategies: the ``strategy`` section and the registry that builds Flower's strategies.

- :mod:`~fedrobust.strategy.config`: :class:`~fedrobust.strategy.config.StrategyConfig`.
- :mod:`~fedrobust.strategy.registry`: name -> builder, with the fields each reads and
  what it reads of a reply; :mod:`~fedrobust.strategy.build`: ``build_strategy`` and the
  strategy state a checkpoint keeps.
- Client drift, each a Flower FedAvg subclass with its client hook:
  :mod:`~fedrobust.strategy.scaffold`, :mod:`~fedrobust.strategy.feddyn`,
  :mod:`~fedrobust.strategy.fednova`; what they share (per-client server state, arrays as
  numpy): :mod:`~fedrobust.strategy.drift`.
"""
