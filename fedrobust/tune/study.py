"""Run a search: an Optuna study whose trials are runs of the scenario.

Each trial is ``fedrobust run DIR/trials/NNN/trial.yaml --out DIR/trials/NNN`` in a
process tree of its own (``--jobs`` at a time), followed through its metrics.json: every
round's validation figure goes to ``trial.report`` and the pruner may stop the run (a
SIGINT, as Ctrl-C: the run stops Flower and every process it started; it is killed after
:data:`STOP_GRACE` seconds, and :mod:`fedrobust.lifetime` sweeps what is left). A finished
trial scores the validation figure of the model the run kept (:func:`score`).

One thread drives everything (ask, start, poll, report, tell), so every process is
started from the main thread (``die_with_parent``) and the sqlite storage sees one writer.
The study lives in ``DIR/study.db``: running again with the same ``--out`` resumes it.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from fedrobust.errors import FedrobustError
from fedrobust.tune.config import VALIDATION_METRICS, Distribution
from fedrobust.tune.space import build, check_space, read_mapping, show, suggest, tune_section

if TYPE_CHECKING:
    import optuna

STUDY_DB = "study.db"
STUDY_LOCK = "study.lock"
TRIALS_DIR = "trials"
TRIAL_SCENARIO = "trial.yaml"
CONSOLE_LOG = "console.log"
STOP_GRACE = 60.0
POLL_SECONDS = 0.5
INTERRUPTED = "interrupted"  # study attribute: trials cut off by a stopped `fedrobust tune`


class TrialProcess(Protocol):
    """A trial's run, started by a :data:`TrialRunner`; it writes ``metrics.json``."""

    def poll(self) -> int | None:
        """Its exit code once it has ended, else None."""

    def stop(self) -> None:
        """Stop it and everything it started; return when they are gone."""

    def last_words(self) -> str:
        """The last line it printed (to explain a failure)."""


# (the trial's scenario file, its run directory) -> the started run
TrialRunner = Callable[[Path, Path], TrialProcess]


class RunProcess:
    """``fedrobust run SCENARIO --out RUN_DIR`` in a process (and session) of its own.

    Its console goes to ``RUN_DIR/console.log``. Started with ``die_with_parent``: it dies
    with the tune process, and takes its own Flower processes with it.
    """

    def __init__(self, scenario_file: Path, run_dir: Path) -> None:
        from fedrobust.lifetime import die_with_parent

        self.log_path = run_dir / CONSOLE_LOG
        self._log: IO[bytes] = self.log_path.open("wb")
        command = [sys.executable, "-m", "fedrobust.cli", "run", str(scenario_file),
                   "--out", str(run_dir)]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI, argument list
            command, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,  # Ctrl-C reaches tune only
        )  # fmt: skip

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is not None:
            self._log.close()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # the run's own Ctrl-C path stops Flower
            try:
                self.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()  # its children die with it; the lifetime watcher sweeps
                self.process.wait()
        self._log.close()

    def last_words(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")


@dataclass(frozen=True)
class Search:
    """What a study searches and where it writes.

    Parameters
    ----------
    source : Path
        The scenario file.
    raw : dict
        Its mapping as written (trial scenarios and ``best.yaml`` are built from it).
    space : dict[str, Distribution]
        Dotted field path -> distribution.
    metric : str
        The validation figure trials report and are scored on.
    out : Path
        The output directory (study.db, trials/, best.yaml, the report).
    pruner, sampler : str
        ``tune.pruner`` (or ``--pruner``) and ``tune.sampler``.
    name, seed, rounds, digest
        The scenario's name, seed and ``train.rounds``; ``digest`` is the digest of the
        scenario without its ``tune`` section (a study resumes only on the same one).
    """

    source: Path
    raw: dict[str, Any]
    space: dict[str, Distribution]
    metric: str
    out: Path
    pruner: str
    sampler: str
    name: str
    seed: int
    rounds: int
    digest: str

    @property
    def direction(self) -> str:
        """``maximize`` or ``minimize``."""
        return VALIDATION_METRICS[self.metric]

    def trial_dir(self, number: int) -> Path:
        """The run directory of trial ``number``: ``trials/NNN``."""
        return self.out / TRIALS_DIR / f"{number:03d}"


def prepare_search(
    source: Path,
    out: str | Path | None = None,
    metric: str | None = None,
    pruner: str | None = None,
) -> Search:
    """Load the scenario and check its search before the first trial.

    Parameters
    ----------
    source : Path
        The scenario file, with a ``tune`` section.
    out : str or Path, optional
        The output directory (default ``runs/tune-<name>``).
    metric, pruner : str, optional
        ``--metric`` and ``--pruner``: override ``tune.metric`` and ``tune.pruner``.

    Raises
    ------
    FedrobustError
        No ``tune`` section; a metric that is not a validation figure (naming
        ``--metric``); no validation split (``data.val_fraction`` 0); a distribution that
        can give a value the scenario refuses (naming ``tune.<path>``).
    """
    from fedrobust.scenario import load_scenario

    scenario = load_scenario(source)
    section = tune_section(scenario, source)
    metric = metric or section.metric
    if metric not in VALIDATION_METRICS:
        raise FedrobustError(
            "--metric",
            f"'{metric}' is not a validation figure: trials are scored on the clients' "
            f"validation results, never the test set; one of {', '.join(VALIDATION_METRICS)}",
        )
    if scenario.data.val_fraction == 0:
        raise FedrobustError(
            "data.val_fraction",
            "is 0: trials are scored on the clients' validation split; give it a share > 0",
        )
    raw = read_mapping(source)
    check_space(raw, section.space)
    base = build(raw, {})
    return Search(
        source=source, raw=raw, space=dict(section.space), metric=metric,
        out=Path(out or f"runs/tune-{scenario.name}").expanduser().resolve(),
        pruner=pruner or section.pruner, sampler=section.sampler,
        name=scenario.name, seed=scenario.seed, rounds=scenario.train.rounds,
        digest=base.digest(),
    )  # fmt: skip


def build_pruner(name: str, rounds: int) -> optuna.pruners.BasePruner:
    """``median``: stop a trial whose round falls below the median of earlier trials at the
    same round, once 3 trials finished and from round 2 on; ``hyperband``: successive
    halving over 1..``rounds`` rounds, factor 3; ``none``: never stop."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(rounds, 1), reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise FedrobustError("--pruner", f"unknown pruner '{name}'; one of median, hyperband, none")


def build_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (``tpe``) or uniform random (``random``) sampling, seeded."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


@contextlib.contextmanager
def study_lock(out: Path) -> Iterator[None]:
    """Hold ``out/study.lock``: one ``fedrobust tune`` at a time per output directory.

    Raises
    ------
    FedrobustError
        When another one holds it.
    """
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with (out / STUDY_LOCK).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FedrobustError(
                str(out), "another `fedrobust tune` is running on this directory"
            ) from None
        yield


def open_study(search: Search) -> optuna.Study:
    """Create the study in ``out/study.db``, or load it to resume.

    The sampler is seeded with the scenario seed plus the trials already in the study,
    so a resumed study does not repeat its first values. Trials a stopped ``fedrobust
    tune`` left running are marked failed (and run again: they do not count).

    Raises
    ------
    FedrobustError
        When the directory holds a study of another scenario or another metric.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search.out.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{search.out / STUDY_DB}", study_name=search.name,
        direction=search.direction, load_if_exists=True,
        pruner=build_pruner(search.pruner, search.rounds),
    )  # fmt: skip
    attrs = study.user_attrs
    if not attrs:
        study.set_user_attr("metric", search.metric)
        study.set_user_attr("scenario_digest", search.digest)
    elif attrs.get("metric") != search.metric:
        raise FedrobustError(
            "--metric",
            f"the study in {search.out} scores {attrs.get('metric')}, not {search.metric}; "
            "give another --out",
        )
    elif attrs.get("scenario_digest") != search.digest:
        raise FedrobustError(
            str(search.out),
            "holds a study of a different scenario (outside its tune: section); give another --out",
        )
    study.sampler = build_sampler(search.sampler, search.seed + len(study.trials))
    stale = [t.number for t in study.get_trials(deepcopy=False) if not t.state.is_finished()]
    for number in stale:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    _mark_interrupted(study, stale)
    return study


def _mark_interrupted(study: optuna.Study, numbers: list[int]) -> None:
    if numbers:
        earlier = list(study.user_attrs.get(INTERRUPTED, []))
        study.set_user_attr(INTERRUPTED, sorted({*earlier, *numbers}))


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards ``--trials``: finished (complete, pruned, failed), not
    cut off by a stopped ``fedrobust tune``."""
    interrupted = set(study.user_attrs.get(INTERRUPTED, []))
    return sum(
        1 for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.number not in interrupted
    )  # fmt: skip


def figure(row: dict[str, Any], metric: str) -> float | None:
    """``row[metric]`` when it is a finite number (no client replied: None)."""
    value = row.get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def score(doc: dict[str, Any], metric: str) -> float | None:
    """A finished run's score: the validation figure of the model it kept.

    ``final.best_<metric>`` when early stopping kept a model on that figure; else the
    figure of the round whose model was kept (``final.model_round``); else the last
    round's that has one. None when no round has it.
    """
    final = doc.get("final") or {}
    best = figure(final, f"best_{metric}")
    if best is not None:
        return best
    rows = list(doc.get("rounds") or [])
    kept = [r for r in rows if r.get("round") == final.get("model_round")]
    for row in [*kept, *reversed(rows)]:
        value = figure(row, metric)
        if value is not None:
            return value
    return None


@dataclass
class _Running:
    """A started trial: its Optuna handle, its process, the rounds reported so far."""

    trial: optuna.Trial
    process: TrialProcess
    run_dir: Path
    reported: int = 0


def run_trials(
    study: optuna.Study,
    search: Search,
    trials: int,
    *,
    jobs: int = 1,
    runner: TrialRunner | None = None,
    say: Callable[[str], None] = print,
    poll_seconds: float | None = None,
) -> int:
    """Run trials until the study counts ``trials`` (:func:`counted_trials`).

    Parameters
    ----------
    study : optuna.Study
        From :func:`open_study`.
    search : Search
        What to search.
    trials : int
        The study's size in all; trials of earlier sessions count.
    jobs : int
        Trials running at the same time.
    runner : callable, optional
        Starts a trial's run (default :class:`RunProcess`; tests inject one that writes
        metrics.json itself).
    say : callable
        Gets one line per trial event.
    poll_seconds : float, optional
        Pause between looks at the running trials' metrics.json (:data:`POLL_SECONDS`).

    Returns
    -------
    int
        The trials started in this call.

    Notes
    -----
    When this call is interrupted (Ctrl-C), the running trials are stopped and marked
    failed and interrupted; the next call runs them again.
    """
    runner = runner or RunProcess
    todo = max(trials - counted_trials(study), 0)
    started = 0
    running: dict[int, _Running] = {}
    try:
        while todo > started or running:
            while todo > started and len(running) < jobs:
                started += 1
                entry = _start(study, search, runner, say)
                if entry is not None:
                    running[entry.trial.number] = entry
            for number in sorted(running):
                if _advance(study, search.metric, running[number], say):
                    del running[number]
            if running:
                time.sleep(POLL_SECONDS if poll_seconds is None else poll_seconds)
    finally:
        import optuna

        for entry in running.values():
            entry.process.stop()
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                entry.trial.set_user_attr("error", "interrupted: `fedrobust tune` was stopped")
                study.tell(entry.trial, state=optuna.trial.TrialState.FAIL)
        _mark_interrupted(study, list(running))
    return started


def _start(
    study: optuna.Study, search: Search, runner: TrialRunner, say: Callable[[str], None]
) -> _Running | None:
    """Ask for a trial, write its scenario and start its run (None: its values were
    refused, and it is told failed)."""
    import optuna

    from fedrobust.scenario import scenario_to_yaml

    trial = study.ask()
    values = suggest(trial, search.space)
    trial.set_user_attr("values", values)
    shown = "  ".join(f"{path}={show(v)}" for path, v in values.items())
    try:
        scenario = build(search.raw, values)
    except FedrobustError as exc:
        trial.set_user_attr("error", f"{exc.where}: {exc.what}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        say(f"trial {trial.number}: {shown}: refused: {exc.where}: {exc.what}")
        return None
    run_dir = search.trial_dir(trial.number)
    trial.set_user_attr("run_dir", str(run_dir.relative_to(search.out)))
    shutil.rmtree(run_dir, ignore_errors=True)  # a trial number is never reused
    run_dir.mkdir(parents=True)
    scenario_file = run_dir / TRIAL_SCENARIO
    scenario_file.write_text(scenario_to_yaml(scenario), encoding="utf-8")
    say(f"trial {trial.number}: {shown}")
    return _Running(trial, runner(scenario_file, run_dir), run_dir)


def _advance(study: optuna.Study, metric: str, entry: _Running, say: Callable[[str], None]) -> bool:
    """Report the trial's new rounds, prune or finish it; True once it is told."""
    import optuna

    from fedrobust.launch import read_json
    from fedrobust.rundir import RunDir

    code = entry.process.poll()  # before reading: a finished run's file is complete
    doc = read_json(RunDir(entry.run_dir).metrics) or {}
    trial = entry.trial
    for row in (doc.get("rounds") or [])[entry.reported :]:
        entry.reported += 1
        value = figure(row, metric)
        if value is None:
            continue
        trial.report(value, step=int(row["round"]))
        if code is None and trial.should_prune():
            entry.process.stop()
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            say(f"trial {trial.number}: pruned after round {row['round']} ({metric} {value:.4f})")
            return True
    if code is None:
        return False
    result = score(doc, metric) if code == 0 and doc.get("status") == "completed" else None
    if result is not None:
        study.tell(trial, result)
        seconds = (doc.get("final") or {}).get("wall_seconds")
        took = f", {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
        say(f"trial {trial.number}: {metric} {result:.4f} ({entry.reported} rounds{took})")
        return True
    if code == 0 and doc.get("status") == "completed":
        error = f"no round has a {metric} figure (did any client reply?)"
    else:
        error = str(doc.get("error") or entry.process.last_words() or f"exit code {code}")
    trial.set_user_attr("error", error)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    say(f"trial {trial.number}: failed: {error}")
    return True
