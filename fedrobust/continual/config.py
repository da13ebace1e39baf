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

CONTINUAL_METHODS = ("ewc", "replay", "lwf", "der", "derpp", "er_ace", "wa", "class_aware")
#: The methods that act on the aggregated classifier head on the server.
HEAD_METHODS = ("wa", "class_aware")
#: The methods that keep a replay buffer (the ``replay`` section's); at most one per scenario.
BUFFER_METHODS = ("replay", "der", "derpp", "er_ace")
#: The methods whose buffer also stores each example's logits at insertion.
LOGIT_METHODS = ("der", "derpp")


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
    aggregate : bool
        Server-side Fisher aggregation (default false): each client sends the Fisher of
        the task it closes; the server merges them per task (weighted by examples, or the
        coordinate-wise median under a robust ``defense``), folds the tasks with
        ``online``'s decay and sends the result with every later training message; the
        client's penalty then uses the federation's Fisher, with its own anchor, in place
        of its own. A client uses its own Fisher until some client has sent the Fisher of
        the task it just finished. Refused with SecAgg+ and with client-level DP.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    lambda_: Annotated[float, Field(ge=0, alias="lambda")] = 100.0
    online: Annotated[float, Field(ge=0, le=1)] = 1.0
    fisher_samples: Annotated[int, Field(ge=1)] = 200
    fisher: Literal["empirical", "true"] = "empirical"
    anchor: Literal["local", "global"] = "local"
    aggregate: bool = False

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc = handler(self)  # written back under its YAML name
        return {("lambda" if k == "lambda_" else k): v for k, v in doc.items()}


class ReplayConfig(Section):
    """Experience replay from a per-client reservoir buffer (Vitter's algorithm R); also the
    buffer of ``der``, ``derpp`` and ``er_ace``.

    Parameters
    ----------
    buffer_size : int
        Examples each client keeps from its finished tasks.
    ratio : float
        Buffer examples drawn per current example in each batch (mode mix; and the buffer
        batch of der, derpp and er_ace).
    mode : str
        mix (a ``ratio`` buffer batch appended to each step's batch) | union (method
        replay only: each round trains on the task's data and the buffer as one set,
        drawn class-balanced).
    balance : bool
        A class-balanced reservoir (equal slots per seen class; an example of a smaller
        class evicts one of the largest) instead of a uniform one.
    """

    buffer_size: Annotated[int, Field(ge=1)] = 200
    ratio: Annotated[float, Field(gt=0, le=4)] = 1.0
    mode: Literal["mix", "union"] = "mix"
    balance: bool = False

    def applicable(self) -> set[str]:
        fields = set(type(self).model_fields)
        return fields - {"ratio"} if self.mode == "union" else fields

    @model_validator(mode="after")
    def _mode_fields(self) -> ReplayConfig:
        self.check_applicable(f"mode '{self.mode}'")
        return self


class DERConfig(Section):
    """Dark experience replay (Buzzega et al. 2020): methods der and derpp.

    Parameters
    ----------
    alpha : float
        Weight of the mean squared error between the logits of buffer examples now and
        the logits stored with them.
    beta : float, optional
        derpp only: weight of the buffer examples' cross-entropy (default 0.5).
    """

    alpha: Annotated[float, Field(ge=0)] = 0.5
    beta: Annotated[float, Field(ge=0)] | None = None

    def beta_value(self) -> float:
        """DER++'s beta (its default when unset)."""
        return 0.5 if self.beta is None else self.beta


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
        none | ewc | replay | lwf | der | derpp | er_ace | wa | class_aware, or a
        combination joined by ``+`` (``ewc+replay``, ``replay+wa``); at most one of the
        buffer methods replay, der, derpp, er_ace. wa (weight aligning, class-incremental
        only) and class_aware (class-aware aggregation of the head, class- and
        task-incremental) act on the aggregated model's classifier head on the server.
    ewc, replay, lwf, der : sections
        Each method's settings (der and derpp read ``der``; every buffer method reads
        ``replay``'s buffer).
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
    der: DERConfig = DERConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ContinualConfig:
        methods = self.methods()
        for name in methods:
            if name not in CONTINUAL_METHODS:
                raise field_error("method", f"unknown method '{name}'; use none or a "
                                   f"'+'-joined set of {', '.join(CONTINUAL_METHODS)}")  # fmt: skip
        if len(set(methods)) != len(methods):
            raise field_error("method", "names a method twice")
        if "wa" in methods and self.setting != "class_incremental":
            raise field_error("method", "wa balances the new classes' head rows against the "
                              "old ones', which only class_incremental puts in one head "
                              f"(not {self.setting})")  # fmt: skip
        if "class_aware" in methods and self.setting == "domain_incremental":
            raise field_error("method", "class_aware averages each class's head row over the "
                              "clients that trained the class; domain_incremental trains "
                              "every class in every task (use fedavg's average)")  # fmt: skip
        if self.der.beta is not None and "derpp" not in methods:
            raise field_error("der.beta", "applies to method derpp only")
        if self.ewc.aggregate and "ewc" not in methods:
            raise field_error("ewc.aggregate", "applies to a method with ewc (ewc, ewc+replay)")
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

    def buffer_method(self) -> str | None:
        """The method that keeps the replay buffer (``None`` when none does)."""
        return next((m for m in self.methods() if m in BUFFER_METHODS), None)

    def num_tasks(self) -> int:
        """Number of tasks."""
        if self.domain is not None:
            return self.domain.num_tasks
        return len(self.tasks or [])
