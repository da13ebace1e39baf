"""Personalization and per-client evaluation.

- :mod:`~fedrobust.personalization.config`: the ``personalization`` section.
- :mod:`~fedrobust.personalization.methods`: finetune, FedPer, FedRep, Ditto, FedBN: what
  each keeps private and how it builds the client's personal model.
- :mod:`~fedrobust.personalization.client`: the client hook (personal state in
  ``context.state``; private parameters never leave the client).
- :mod:`~fedrobust.personalization.evaluation`: per-client figures on the clients' local
  test splits, each round and at the end (``final.personalized``, ``final.global_local``).
"""
