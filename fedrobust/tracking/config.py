"""The ``output.mlflow`` section: where a run's MLflow record goes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field

from fedrobust.config.base import Section

FILE_SCHEME = "file:"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


class MlflowConfig(Section):
    """Log the run to MLflow as it goes: parameters, figures per round, files at the end.

    Parameters
    ----------
    tracking_uri : str
        The MLflow tracking store. A ``file:`` URI (or a plain path) is a local store: a
        relative one is read from the run directory's parent, so the default puts every
        run under ``runs/`` into ``runs/mlruns``. ``sqlite:``, ``http(s):`` and other
        URIs are passed to MLflow as they are.
    experiment : str
        The MLflow experiment (default: the scenario's name); created when missing.
    run_name : str
        The MLflow run's name (default: the run directory's name).
    """

    tracking_uri: Annotated[str, Field(min_length=1)] = "file:mlruns"
    experiment: Annotated[str, Field(min_length=1)] | None = None
    run_name: Annotated[str, Field(min_length=1)] | None = None

    def resolved_uri(self, run_dir: Path) -> str:
        """``tracking_uri`` with a relative local store placed beside ``run_dir``."""
        return resolve_tracking_uri(self.tracking_uri, run_dir)


def resolve_tracking_uri(uri: str, run_dir: Path) -> str:
    """Resolve a local store's relative path against ``run_dir``'s parent.

    Parameters
    ----------
    uri : str
        A tracking URI: ``file:PATH``, ``file:///PATH``, a plain path, or any other URI.
    run_dir : Path
        The run directory.

    Returns
    -------
    str
        ``file:/ABSOLUTE/PATH`` for a local store; any other URI unchanged.
    """
    if uri.startswith("file://"):  # file:///abs/path: absolute by its form
        return uri
    if uri.startswith(FILE_SCHEME):
        path = Path(uri[len(FILE_SCHEME) :])
    elif _SCHEME.match(uri):  # sqlite:, http:, https:, databricks:, ...
        return uri
    else:
        path = Path(uri)
    path = path.expanduser()
    if not path.is_absolute():
        path = run_dir.resolve().parent / path
    return FILE_SCHEME + str(path)
