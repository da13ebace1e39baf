"""The run's metrics.json: written atomically after every round.

Layout (the contract in ARCHITECTURE.md)::

    {"status": "running" | "completed" | "failed", "error": str | null, "token": str,
     "versions": {"fedrobust", "flwr", "torch", "opacus", "python"},
     "scenario": {...}, "data": {...}, "initial": {...},
     "rounds": [{"round", "accuracy", "loss", "seconds", ...}, ...],
     "final": {... last round's figures, "wall_seconds", "rounds_completed", then the
               figures of the model the run keeps (model.pt), "model_round"}}
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedrobust import versions
from fedrobust.errors import FedrobustError
from fedrobust.rundir import METRICS_FILE as METRICS_FILE  # re-exported for callers
from fedrobust.rundir import RunDir, discard_checkpoint, write_atomic
from fedrobust.tracking import Tracker, close_trackers, forward_round, open_trackers

if TYPE_CHECKING:
    from fedrobust.scenario import Scenario

STATUSES = ("running", "completed", "failed")
#: Federations of more clients record ``clients_summary`` (distributions over the
#: clients) instead of one ``clients`` record each: metrics.json is rewritten every round.
PER_CLIENT_LIMIT = 100
# Figures that measure time, not learning: they differ between identical runs.
TIMING_KEYS = frozenset({"seconds", "wall_seconds", "train_seconds"})


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` so readers never see a partial file.

    Temporary file, flushed to disk, renamed over ``path``; the directory is flushed too,
    so the rename survives a power loss.
    """
    text = json.dumps(_finite(payload), indent=2)
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def _finite(value: Any) -> Any:
    """JSON has no NaN: write ``null`` for non-finite floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """Load ``run_dir/metrics.json``.

    Raises
    ------
    FedrobustError
        Naming the file, when it is missing, not JSON, or not a fedrobust metrics document
        (an object with a known ``status``, a ``scenario`` object and a list of ``rounds``
        objects).
    """
    path = RunDir(run_dir).metrics
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FedrobustError(str(path), "no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FedrobustError(str(path), f"unreadable metrics ({exc})") from None
    problem = _malformed(doc)
    if problem:
        raise FedrobustError(str(path), f"malformed metrics ({problem})")
    return doc


def _malformed(doc: Any) -> str | None:
    """What makes ``doc`` no fedrobust metrics document, or None."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("status") not in STATUSES:
        return f"status is {doc.get('status')!r}, not one of {', '.join(STATUSES)}"
    if not isinstance(doc.get("scenario"), dict):
        return "no scenario object"
    rounds = doc.get("rounds")
    if not isinstance(rounds, list) or not all(isinstance(row, dict) for row in rounds):
        return "rounds is not a list of objects"
    return None


class RunRecorder:
    """Collects a run's figures and rewrites metrics.json after each change.

    A fresh recorder starts a fresh run: it removes the run directory's checkpoint.pt
    first, so an older run's state can never be resumed under this run's metrics.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    scenario : dict
        The validated scenario, as a dict.
    token : str
        Identifies this launch in metrics.json.
    trackers : Sequence[Tracker]
        Live trackers (:mod:`fedrobust.tracking`): each gets the initial evaluation and
        every round right after metrics.json is saved; one that fails is dropped;
        :meth:`close_trackers` ends them.
    """

    def __init__(
        self,
        run_dir: Path,
        scenario: dict[str, Any],
        token: str = "",
        trackers: Sequence[Tracker] = (),
    ) -> None:
        discard_checkpoint(run_dir)
        self.path = RunDir(run_dir).metrics
        self.trackers = list(trackers)
        self.started = time.monotonic()
        self.doc: dict[str, Any] = {
            "status": "running",
            "error": None,
            "token": token,
            "versions": versions(),
            "scenario": scenario,
            "data": None,
            "initial": None,
            "rounds": [],
            "final": None,
        }
        self._save()

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        scenario: dict[str, Any],
        rounds_done: int,
        token: str = "",
        trackers: Sequence[Tracker] = (),
    ) -> RunRecorder:
        """Continue the metrics of an interrupted run, keeping its first ``rounds_done`` rounds."""
        old = read_metrics(run_dir)
        recorder = cls.__new__(cls)
        recorder.path = RunDir(run_dir).metrics
        recorder.trackers = list(trackers)
        recorder.started = time.monotonic()
        recorder.doc = {
            **old,
            "status": "running",
            "error": None,
            "token": token,
            "versions": versions(),
            "scenario": scenario,
            "rounds": old["rounds"][:rounds_done],
            "final": None,
        }
        recorder._save()
        return recorder

    @classmethod
    def start(
        cls, run_dir: Path, scenario: Scenario, rounds_done: int, token: str = ""
    ) -> RunRecorder:
        """The server's recorder, with the trackers ``scenario.output`` asks for.

        Parameters
        ----------
        run_dir : Path
            The run directory.
        scenario : Scenario
            The validated scenario.
        rounds_done : int
            The checkpoint's round when the run resumes (:meth:`resume`), else 0 (fresh).
        token : str
            Identifies this launch in metrics.json.

        Raises
        ------
        FedrobustError
            A tracker's package is missing (:func:`fedrobust.tracking.check_tracking`).
        """
        doc = scenario.model_dump(mode="json")
        trackers = open_trackers(scenario, run_dir, rounds_done)
        try:
            if rounds_done == 0:
                return cls(run_dir, doc, token=token, trackers=trackers)
            return cls.resume(run_dir, doc, rounds_done, token=token, trackers=trackers)
        except BaseException:  # no metrics.json to resume: the trackers end here too
            close_trackers(trackers, run_dir, "failed")
            raise

    def set_data(self, data: dict[str, Any]) -> None:
        """Record the federation summary (sizes, label histograms, noise rates); compact
        beyond :data:`PER_CLIENT_LIMIT` clients (:func:`compact_data`)."""
        self.doc["data"] = compact_data(data)
        self._save()

    def initial(self, figures: dict[str, Any]) -> None:
        """Record the evaluation of the initial global model (round 0)."""
        self.doc["initial"] = figures
        self._save()
        self._track(figures)

    def add_round(self, figures: dict[str, Any]) -> None:
        """Append one round's figures (must hold ``round``, ``accuracy``, ``loss``)."""
        self.doc["rounds"].append(figures)
        self._save()
        self._track(figures)

    @property
    def last_round(self) -> int:
        """The last round recorded (0 before round 1)."""
        rounds = self.doc["rounds"]
        return int(rounds[-1]["round"]) if rounds else 0

    def finish(self, totals: dict[str, Any] | None = None) -> dict[str, Any]:
        """Mark the run completed; ``final`` = last round's figures plus run totals."""
        last = dict(self.doc["rounds"][-1]) if self.doc["rounds"] else {}
        last.pop("clients", None)
        last.update(
            {
                "rounds_completed": len(self.doc["rounds"]),
                "wall_seconds": round(time.monotonic() - self.started, 3),
            }
        )
        last.update(totals or {})
        self.doc["final"] = last
        self.doc["status"] = "completed"
        self._save()
        return last

    def fail(self, error: str) -> None:
        """Mark the run failed, keeping every round recorded so far."""
        self.doc["status"] = "failed"
        self.doc["error"] = error
        self._save()

    def close_trackers(self) -> None:
        """Close the trackers with the run's status (after the report: it goes with them).

        Never raises; a second call does nothing.
        """
        trackers, self.trackers = self.trackers, []
        close_trackers(trackers, self.path.parent, self.doc["status"])

    def _save(self) -> None:
        write_json_atomic(self.path, self.doc)

    def _track(self, figures: dict[str, Any]) -> None:
        """Hand ``figures`` to the trackers, once saved: they show the run as it goes."""
        self.trackers = forward_round(self.trackers, figures, self.path.parent)


def compact_data(data: dict[str, Any], limit: int = PER_CLIENT_LIMIT) -> dict[str, Any]:
    """``data`` with its per-client records replaced by ``clients_summary`` when it has
    more than ``limit`` clients; unchanged otherwise.

    ``clients_summary`` holds ``count``; the spread (min, 10th percentile, median, 90th
    percentile, max, mean) over the clients of ``train``, ``val``, ``local_test``,
    ``noise_rate``, ``classes_held`` (classes with a training sample) and
    ``largest_class_share`` (the share of a client's training samples in its largest
    class: 1/classes for a balanced client, 1 for a one-class client); ``label_totals``
    (training samples per class, all clients); and 20-bin histograms of training-set
    size and largest-class share for the report. Its size does not grow with the clients.
    """
    clients = data.get("clients") or []
    if len(clients) <= limit:
        return data
    import numpy as np

    counts = np.array([c["label_histogram"] for c in clients], dtype=np.int64)
    train = counts.sum(axis=1)
    share = counts.max(axis=1) / np.maximum(train, 1)
    summary = {
        "count": len(clients),
        **{key: _spread([c[key] for c in clients]) for key in ("train", "val", "local_test")},
        "noise_rate": _spread([c["noise_rate"] for c in clients]),
        "classes_held": _spread((counts > 0).sum(axis=1)),
        "largest_class_share": _spread(share),
        "label_totals": counts.sum(axis=0).tolist(),
        "train_histogram": _histogram(train, (0, int(train.max()) + 1)),
        "largest_class_share_histogram": _histogram(share, (0.0, 1.0)),
    }
    return {**{k: v for k, v in data.items() if k != "clients"}, "clients_summary": summary}


def _spread(values: Sequence[float] | Any) -> dict[str, float]:
    """min, p10, median, p90, max and mean of ``values``."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    p10, median, p90 = np.percentile(array, [10, 50, 90])
    return {
        "min": float(array.min()), "p10": round(float(p10), 6), "median": float(median),
        "p90": round(float(p90), 6), "max": float(array.max()),
        "mean": round(float(array.mean()), 6),
    }  # fmt: skip


def _histogram(values: Any, bounds: tuple[float, float], bins: int = 20) -> dict[str, list]:
    """``{"edges": bins + 1 edges, "counts": clients per bin}`` of ``values``."""
    import numpy as np

    counts, edges = np.histogram(values, bins=bins, range=bounds)
    return {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}
