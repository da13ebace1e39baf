"""Optional dependencies: which extra brings each, and one error that names it.

``pip install fedrobust`` is what an edge device needs (the ClientApp, DP-SGD). Every
other capability's packages come with an extra (pyproject.toml); code that needs one
checks with :func:`require` before it imports the package, so a missing package is one
:class:`~fedrobust.errors.FedrobustError` naming the field or command and the install
command (exit 2 from the CLI), never a traceback from deep inside a run.
"""

from __future__ import annotations

from importlib.util import find_spec

from fedrobust.errors import FedrobustError

#: The extra that installs each optional top-level module.
EXTRA_OF: dict[str, str] = {
    "ray": "simulation",
    "flwr_datasets": "simulation",
    "datasets": "simulation",
    "sklearn": "simulation",
    "mlxtend": "simulation",
    "pandas": "simulation",
    "matplotlib": "report",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
    "torchattacks": "attacks",
    "tensorboard": "tracking",
    "mlflow": "tracking",
    "optuna": "tune",
    "captum": "explain",
}

#: torchattacks' metadata pins requests~=2.25 and asks for torchvision, neither of which
#: installs beside flwr and torch: the extra brings its real needs, the package comes alone.
_AFTER = {"attacks": " && pip install --no-deps torchattacks==3.5.1"}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'fedrobust[{extra}]'{_AFTER.get(extra, '')}"


def missing_modules(*modules: str) -> list[str]:
    """Those of ``modules`` (top-level names) that are not installed."""
    return [m for m in modules if find_spec(m) is None]


def require(where: str, *modules: str) -> None:
    """Refuse, naming ``where`` and the extra, when one of ``modules`` is not installed.

    Parameters
    ----------
    where : str
        The scenario field, command or option that needs the modules.
    modules : str
        Top-level module names, each a key of :data:`EXTRA_OF`.

    Raises
    ------
    FedrobustError
        ``needs <modules>: pip install 'fedrobust[<extra>]'``.
    """
    missing = missing_modules(*modules)
    if missing:
        extras = sorted({EXTRA_OF[m] for m in missing})
        hints = " and ".join(install_hint(e) for e in extras)
        raise FedrobustError(where, f"needs {', '.join(missing)}: {hints}")
