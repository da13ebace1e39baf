"""The ``continual`` section: tasks trained one after the other and the anti-forgetting methods."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from fedrobust.config.base import Section, field_error

CONTINUAL_METHODS = ("ewc", "replay", "lwf")


class EWCConfig(Section):
    """Elastic weight consolidation (Kirkpatrick et al. 2017).

    Parameters
    ----------
    lambda_ : float
        Strength of the penalty (YAML key ``lambda``).
    online : float
        Online EWC decay of the running Fisher at each task end (Schwarz et al. 2018):
        ``F = online * F + F_task``; 1.0 keeps the sum of every task's Fisher.
    fisher_samples : int
        Examples of the finished task the Fisher diagonal is estimated on.
    fisher : str
        empirical (gradients at the examples' own labels, the default) | true (labels
        drawn from the model's predictive distribution: the Fisher information proper).
    anchor : str
        local (the default): the Fisher and the anchor are taken at the client's own model
        after its last round of the task, on that task's data | global: at the global
        model the client receives when it moves on to the next task. A task the client
        never trained (it joined or was sampled only later) is taken at the global model.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    lambda_: Annotated[float, Field(ge=0, alias="lambda")] = 100.0
    online: Annotated[float, Field(ge=0, le=1)] = 1.0
    fisher_samples: Annotated[int, Field(ge=1)] = 200
    fisher: Literal["empirical", "true"] = "empirical"
    anchor: Literal["local", "global"] = "local"

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc = handler(self)  # written back under its YAML name
        return {("lambda" if k == "lambda_" else k): v for k, v in doc.items()}


class ReplayConfig(Section):
    """Experience replay from a per-client reservoir buffer (Vitter's algorithm R).

    Parameters
    ----------
    buffer_size : int
        Examples each client keeps from its finished tasks.
    ratio : float
        Replayed examples appended per current example in each batch.
    """

    buffer_size: Annotated[int, Field(ge=1)] = 200
    ratio: Annotated[float, Field(gt=0, le=4)] = 1.0


class LwFConfig(Section):
    """Learning without forgetting (Li & Hoiem 2017): distil the previous task's model.

    Parameters
    ----------
    temperature : float
        Distillation temperature.
    alpha : float
        Weight of the distillation term.
    """

    temperature: Annotated[float, Field(gt=0)] = 2.0
    alpha: Annotated[float, Field(ge=0)] = 1.0


class DomainConfig(Section):
    """The input shift of each domain-incremental task (task 0 is the original data).

    Parameters
    ----------
    kind : str
        permute (a fixed pixel permutation per task, seeded) | rotate.
    num_tasks : int
        Number of tasks.
    degrees : float
        rotate: degrees added per task.
    """

    kind: Literal["permute", "rotate"] = "permute"
    num_tasks: Annotated[int, Field(ge=2, le=50)] = 3
    degrees: Annotated[float, Field(gt=0, le=180)] = 30.0


class ContinualConfig(Section):
    """A sequence of tasks trained one after the other (``fedrobust.continual``).

    Parameters
    ----------
    setting : str
        class_incremental (one head, classes arrive in groups) | task_incremental (the
        task is known: logits outside its classes are masked) | domain_incremental (the
        same classes, shifted inputs per task).
    tasks : list[list[int]]
        class/task-incremental: the class groups in order, e.g. [[0, 1], [2, 3]].
    domain : DomainConfig
        domain-incremental: the shift per task.
    rounds_per_task : int
        Federated rounds spent on each task.
    schedule : str
        together (every client moves on at the same round) | own (each client's task
        boundaries are shifted by a seeded offset of up to ``rounds_per_task - 1`` rounds).
    method : str
        none | ewc | replay | lwf, or a combination joined by ``+`` (``ewc+replay``).
    ewc, replay, lwf : sections
        Each method's settings.
    """

    setting: Literal["class_incremental", "task_incremental", "domain_incremental"]
    tasks: list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]] | None = None
    domain: DomainConfig | None = None
    rounds_per_task: Annotated[int, Field(ge=1)] = 5
    schedule: Literal["together", "own"] = "together"
    method: str = "none"
    ewc: EWCConfig = EWCConfig()
    replay: ReplayConfig = ReplayConfig()
    lwf: LwFConfig = LwFConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ContinualConfig:
        methods = self.methods()
        for name in methods:
            if name not in CONTINUAL_METHODS:
                raise field_error("method", f"unknown method '{name}'; use none or a "
                                   f"'+'-joined set of {', '.join(CONTINUAL_METHODS)}")  # fmt: skip
        if len(set(methods)) != len(methods):
            raise field_error("method", "names a method twice")
        if self.setting == "domain_incremental":
            if self.tasks is not None:
                raise field_error("tasks", "does not apply to domain_incremental (use domain)")
            if self.domain is None:
                self.domain = DomainConfig()
        else:
            if self.domain is not None:
                raise field_error("domain", f"does not apply to {self.setting}")
            if self.tasks is None or len(self.tasks) < 2:
                raise field_error("tasks", f"{self.setting} needs at least 2 class groups")
            seen: set[int] = set()
            for i, group in enumerate(self.tasks):
                if seen & set(group) or len(set(group)) != len(group):
                    raise field_error(f"tasks.{i}", "a class appears in more than one place")
                seen |= set(group)
        return self

    def methods(self) -> list[str]:
        """The methods in use (empty for none)."""
        return [] if self.method == "none" else self.method.split("+")

    def num_tasks(self) -> int:
        """Number of tasks."""
        if self.domain is not None:
            return self.domain.num_tasks
        return len(self.tasks or [])
