"""The federated round around local training: client and server hooks, the client's
local round, reply screening, transports and the records messages carry.

``clients/client_app.py`` and ``server/loop.py`` wire these; each feature package adds
its hooks in ``registry.py``.
"""
