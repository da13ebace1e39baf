"""The ``adversarial`` section: adversarial training on clients, robust evaluation on the server."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, field_error

ADV_TRAINING_FIELDS: dict[str, set[str]] = {
    "none": set(),
    "pgd_at": {"eps", "alpha", "steps", "ratio", "start_round", "norm", "eps_schedule"},
    "fgsm_rs": {"eps", "alpha", "ratio", "start_round", "eps_schedule"},
    "trades": {"eps", "alpha", "steps", "start_round", "beta", "eps_schedule"},
    "mart": {"eps", "alpha", "steps", "start_round", "beta", "eps_schedule"},
}


class EpsScheduleConfig(Section):
    """How the training budget grows to ``eps`` (``adversarial.training.eps_schedule``).

    A large budget from the first adversarial round can collapse training (the model
    settles on one class, where the attack cannot hurt it further); a ramp lets it learn
    the easy perturbations first (e.g. Gowal et al. 2020, https://arxiv.org/abs/2010.03593).

    Parameters
    ----------
    kind : str
        constant (``eps`` from ``start_round`` on) | linear (round ``start_round + k``
        uses ``eps * min(1, (k + 1) / warmup_rounds)``).
    warmup_rounds : int
        linear: rounds until the budget reaches ``eps``.
    """

    kind: Literal["constant", "linear"] = "linear"
    warmup_rounds: Annotated[int, Field(ge=1)] = 5

    def applicable(self) -> set[str]:
        return {"kind"} if self.kind == "constant" else {"kind", "warmup_rounds"}

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> EpsScheduleConfig:
        self.check_applicable(f"kind '{self.kind}'")
        return self

    def factor(self, rounds_in: int) -> float:
        """The share of ``eps`` used in the ``rounds_in``-th adversarial round (0-based)."""
        if self.kind == "constant":
            return 1.0
        return min(1.0, (rounds_in + 1) / self.warmup_rounds)


class AdversarialTrainingConfig(Section):
    """Adversarial training on the clients (``fedrobust.adversarial``).

    Parameters
    ----------
    method : str
        none | pgd_at (Madry et al. 2018) | fgsm_rs (FGSM with random start, Wong et al.
        2020) | trades (Zhang et al. 2019) | mart (Wang et al. 2020).
    eps : float
        Perturbation budget in input units ([0, 1] pixels).
    alpha : float
        Step size (default: 2.5 * eps / steps for PGD, TRADES and MART, 1.25 * eps for
        fgsm_rs).
    steps : int
        Attack iterations (pgd_at, trades, mart).
    ratio : float
        Share of each batch replaced by its adversarial version (pgd_at, fgsm_rs).
    start_round : int
        First round with adversarial training (warm-up before it).
    norm : str
        linf | l2 (pgd_at: ``PGD`` or ``PGDL2``).
    beta : float
        trades, mart: weight of the robustness (KL) term (mart's lambda).
    eps_schedule : EpsScheduleConfig, optional
        The budget's ramp from ``start_round`` (default: ``eps`` at once); the step size
        ``alpha`` follows the budget (its ratio to ``eps`` is kept).
    """

    method: Literal[tuple(ADV_TRAINING_FIELDS)] = "none"  # type: ignore[valid-type]
    eps: Annotated[float, Field(gt=0, le=1)] = 0.3
    alpha: Annotated[float, Field(gt=0, le=1)] | None = None
    steps: Annotated[int, Field(ge=1, le=1000)] = 10
    ratio: Annotated[float, Field(gt=0, le=1)] = 1.0
    start_round: Annotated[int, Field(ge=1)] = 1
    norm: Literal["linf", "l2"] = "linf"
    beta: Annotated[float, Field(ge=0)] = 6.0
    eps_schedule: EpsScheduleConfig | None = None

    def applicable(self) -> set[str]:
        return ADV_TRAINING_FIELDS[self.method] | {"method"}

    def budget(self, rnd: int) -> tuple[float, float]:
        """``(eps, alpha)`` of round ``rnd`` (a round from ``start_round`` on)."""
        factor = 1.0
        if self.eps_schedule is not None:
            factor = self.eps_schedule.factor(rnd - self.start_round)
        return self.eps * factor, self.step_size() * factor

    @model_validator(mode="after")
    def _fields_fit_method(self) -> AdversarialTrainingConfig:
        self.check_applicable(f"adversarial.training.method '{self.method}'")
        return self

    def step_size(self) -> float:
        """alpha, or the method's usual default."""
        if self.alpha is not None:
            return self.alpha
        if self.method == "fgsm_rs":
            return 1.25 * self.eps
        return 2.5 * self.eps / self.steps


class AdversarialEvaluationConfig(Section):
    """Robust accuracy of the global model under attack (server side).

    Parameters
    ----------
    attacks : list[str]
        torchattacks attacks by name (``fedrobust.attacks.known_attacks()``).
    eps : list[float]
        Budgets to evaluate at, each in (0, 1].
    steps : int
        Iterations of iterative attacks.
    norm : str
        linf | l2. Every attack runs under it: attacks that take a norm (APGD, APGDT,
        AutoAttack, FAB, Square) get it, pgd and pgdrs run as PGDL2 and PGDRSL2 under
        l2; an attack with no variant for the norm (fgsm, bim, mifgsm, ... under l2;
        pgdl2 under linf) is refused.
    every_n_rounds : int
        Evaluate every n rounds (and always after the last).
    num_samples : int, optional
        Test examples attacked, a seeded random subset of the held-out test set
        (default: the whole test set when it has at most 1,000 examples, else 1,000).
    """

    attacks: Annotated[list[str], Field(min_length=1)] = ["pgd", "fgsm"]
    eps: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)] = [0.1]
    steps: Annotated[int, Field(ge=1, le=1000)] = 20
    norm: Literal["linf", "l2"] = "linf"
    every_n_rounds: Annotated[int, Field(ge=1)] = 5
    num_samples: Annotated[int, Field(ge=1)] | None = None

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, names: list[str]) -> list[str]:
        from fedrobust.attacks import check_attack_name

        for i, name in enumerate(names):
            try:
                check_attack_name(name)
            except ValueError as exc:
                raise field_error(str(i), str(exc)) from None
        return names

    @model_validator(mode="after")
    def _attacks_fit_norm(self) -> AdversarialEvaluationConfig:
        from fedrobust.attacks import without_norm

        missing = without_norm(self.attacks, self.norm)
        if missing:
            label = "L2" if self.norm == "l2" else "L-infinity"
            raise field_error(
                "norm",
                f"'{self.norm}' does not apply to {', '.join(missing)}: torchattacks has no "
                f"{label} variant of them; remove them from adversarial.evaluation.attacks "
                "(attacks with both variants: pgd, pgdrs, apgd, apgdt, autoattack, fab, "
                "square)",
            )
        return self


class AdversarialConfig(Section):
    """Adversarial robustness: training on the clients, evaluation on the server.

    Parameters
    ----------
    training : AdversarialTrainingConfig
        How clients harden the model.
    evaluation : AdversarialEvaluationConfig
        Which attacks the server measures (default: none).
    """

    training: AdversarialTrainingConfig = AdversarialTrainingConfig()
    evaluation: AdversarialEvaluationConfig | None = None
