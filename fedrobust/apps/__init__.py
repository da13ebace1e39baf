"""Flower's two apps: :mod:`fedrobust.apps.clients` (the ClientApp and the edge node's
command) and :mod:`fedrobust.apps.server` (the ServerApp and its round loop).

Their code lives in the repository's top-level ``clients/`` and ``server/`` folders. A
wheel installs those folders here (``[tool.setuptools.package-dir]`` in pyproject.toml),
so nothing generic such as ``server`` lands in site-packages. From a source checkout the
folders are found where they are: the search path of this package then also covers the
checkout root (the folder holding ``pyproject.toml``, ``clients/`` and ``server/``).

``flower/pyproject.toml`` is the Flower app that ``flwr run`` builds: its components name
the modules above, which every process imports from the installed package.
"""

from __future__ import annotations

from pathlib import Path

FLOWER_APP_DIR = Path(__file__).resolve().parent / "flower"

_CHECKOUT = Path(__file__).resolve().parents[2]
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "clients" / "client_app.py").is_file():
    __path__.append(str(_CHECKOUT))
