"""Poisoning robustness: malicious clients and the rules that combine updates robustly.

- :mod:`~fedrobust.robust.malicious`: which clients are malicious (seeded).
- :mod:`~fedrobust.robust.poisoning`: what a malicious client does to its data or update.
- :mod:`~fedrobust.robust.collusion`: colluding attackers that know the benign updates
  (ALIE, IPM, min-max), kept apart from the defences.
- :mod:`~fedrobust.robust.defenses`: aggregation rules (Krum, median, FLTrust, ...).
- :mod:`~fedrobust.robust.updates`: flat update vectors from Flower's ArrayRecords.
"""
