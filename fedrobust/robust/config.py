"""The ``attack`` and ``defense`` sections: malicious clients and the robust aggregation rule."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fedrobust.config.base import Section, check_registered, field_error

ATTACK_FIELDS: dict[str, set[str]] = {
    "none": set(),
    "label_flip": {"flip_map"},
    "sign_flip": {"scale"},
    "gaussian": {"noise_std"},
    "scaling": {"scale"},
    "backdoor": {"target_class", "trigger_size", "trigger_value", "poison_fraction", "scale"},
    "alie": {"z"},
    "ipm": {"epsilon"},
    "minmax": {"deviation"},
    "malformed": {"malformations"},
}
# The kinds run by the colluding attacker component on the server (fedrobust.robust.collusion);
# the others run inside the malicious ClientApps on their own data.
COLLUDING_ATTACKS = ("alie", "ipm", "minmax")


class AttackConfig(Section):
    """Malicious clients (``fedrobust.robust``): who lies, from when, and how.

    Parameters
    ----------
    kind : str
        none | label_flip | sign_flip | gaussian | scaling | backdoor (data or update
        poisoning on the malicious clients) | alie (Baruch et al. 2019) | ipm (Xie et al.
        2020) | minmax (Shejwalkar & Houmansadr 2021): colluding attackers who know the
        round's benign updates | malformed: the chaos client, replies the server must
        drop (``fedrobust.robust.malformed``).
    fraction : float
        Share of the clients that are malicious (default 0.2 when ``count`` is unset).
    count : int
        Number of malicious clients (instead of ``fraction``).
    start_round : int
        First round in which the malicious clients attack (they behave before it).
    flip_map : dict[int, int]
        label_flip: source class -> target class (default: y -> K - 1 - y).
    scale : float
        sign_flip: the update sent is ``-scale * update`` (default 1); scaling and
        backdoor: ``scale * update`` (default 10 and 1; backdoor with a scale above 1 is
        model replacement, Bagdasaryan et al. 2020).
    noise_std : float
        gaussian: the update sent is N(0, noise_std^2) per coordinate.
    target_class : int
        backdoor: the class triggered inputs should be classified as.
    trigger_size : int
        backdoor: side of the square trigger in the bottom-right corner (images; for
        sequences the last features of the last steps) or the number of last features
        (flat inputs) set to ``trigger_value``.
    trigger_value : float
        backdoor: value written into the trigger pixels (inputs are in [0, 1]).
    poison_fraction : float
        backdoor: share of a malicious client's training examples stamped and relabelled.
    z : float
        alie: standard deviations from the benign mean (default: Baruch et al.'s z_max
        from the numbers of clients and attackers).
    epsilon : float
        ipm: the update sent is ``-epsilon * mean(benign updates)``.
    deviation : str
        minmax: perturbation direction, std | unit_vec | sign.
    malformations : list[str]
        malformed (the chaos client, ``fedrobust.robust.malformed``): the classes of bad
        reply the malicious clients cycle through, round by round (default: all).
    """

    kind: Literal[tuple(ATTACK_FIELDS)] = "none"  # type: ignore[valid-type]
    fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    count: Annotated[int, Field(ge=1)] | None = None
    start_round: Annotated[int, Field(ge=1)] = 1
    flip_map: dict[int, int] | None = None
    scale: Annotated[float, Field(gt=0)] | None = None
    noise_std: Annotated[float, Field(gt=0)] = 1.0
    target_class: Annotated[int, Field(ge=0)] = 0
    trigger_size: Annotated[int, Field(ge=1)] = 2
    trigger_value: Annotated[float, Field(ge=0, le=1)] = 1.0
    poison_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    z: Annotated[float, Field(gt=0)] | None = None
    epsilon: Annotated[float, Field(gt=0)] = 0.5
    deviation: Literal["std", "unit_vec", "sign"] = "std"
    malformations: list[str] | None = None

    def applicable(self) -> set[str]:
        common = {"kind"} if self.kind == "none" else {"kind", "fraction", "count", "start_round"}
        return ATTACK_FIELDS[self.kind] | common

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> AttackConfig:
        self.check_applicable(f"attack.kind '{self.kind}'")
        if self.fraction is not None and self.count is not None:
            raise field_error("count", "give fraction or count, not both")
        if self.malformations is not None:
            from fedrobust.robust.malformed import MALFORMATIONS

            unknown = sorted(set(self.malformations) - set(MALFORMATIONS))
            known = ", ".join(MALFORMATIONS)
            if unknown:
                raise field_error("malformations", f"unknown {unknown}; known: {known}")
            if not self.malformations:
                raise field_error("malformations", f"name at least one of: {known}")
        for src, dst in (self.flip_map or {}).items():
            if src < 0 or dst < 0:
                raise field_error("flip_map", f"class ids must be >= 0 (got {src}: {dst})")
        return self

    def update_scale(self) -> float:
        """The factor a malicious client applies to its update (sign_flip: its magnitude)."""
        if self.scale is not None:
            return self.scale
        return 10.0 if self.kind == "scaling" else 1.0

    def num_malicious(self, num_clients: int) -> int:
        """How many of ``num_clients`` clients are malicious (0 without an attack)."""
        if self.kind == "none":
            return 0
        if self.count is not None:
            return self.count
        return max(1, round((0.2 if self.fraction is None else self.fraction) * num_clients))


#: ``defense.name`` for no defence: the strategy's own mean, no rule from the registry.
NO_DEFENSE = "fedavg"


def known_defenses() -> list[str]:
    """``defense.name`` values: no defence, then the registered rules (sorted)."""
    from fedrobust.robust.defenses import DEFENSES

    return [NO_DEFENSE, *DEFENSES.names()]


def defense_options(name: str) -> set[str]:
    """The ``defense`` fields the rule ``name`` reads (from its registered class)."""
    if name == NO_DEFENSE:
        return set()
    from fedrobust.robust.defenses import DEFENSES

    return set(DEFENSES.get(name).options)


class DefenseConfig(Section):
    """How the server combines client updates (``fedrobust.robust.defenses``).

    ``defense.name`` picks how the round's client updates are combined into one;
    ``strategy.name`` then turns that into the server update (FedAvg, FedAdam, ...).

    Parameters
    ----------
    name : str
        fedavg (no defence) | krum | multikrum | bulyan (Flower's selection rules) |
        median | trimmed_mean (coordinate-wise) | norm_bound (clip each update's norm) |
        centered_clip (Karimireddy et al. 2021) | fltrust (Cao et al. 2021) | dnc
        (Shejwalkar & Houmansadr 2021) | flame (Nguyen et al. 2022) | signsgd_mv
        (Bernstein et al. 2019) | zeno (Xie et al. 2019). ``docs/how-to/defenses.md``
        describes each.
    num_malicious : int
        krum, multikrum, bulyan, dnc, zeno, centered_clip (``tau_schedule: theory``):
        attackers the rule assumes per round (default: the scenario's ``attack`` count,
        else 0); refused when too few clients are sampled for the rule to tolerate them
        (krum, multikrum: n >= 2f + 3, Blanchard et al. 2017; bulyan: n >= 4f + 3).
    num_selected : int
        multikrum: updates averaged (default: sampled clients - num_malicious).
    beta : float
        trimmed_mean: fraction cut at each end per coordinate; refused unless it cuts
        at least the scenario's attackers per side (``int(beta * n) >= f``).
    clip_norm : float
        norm_bound: largest update norm kept (default: the median norm of the round).
    tau : float
        centered_clip: clipping radius around the centre (default: the median distance
        to the centre, recomputed each iteration); given, ``tau_schedule`` is fixed.
    tau_schedule : str
        centered_clip: median (default) | fixed (``tau``, required) | theory
        (Karimireddy et al. 2021's ``4 rho sqrt((1 - delta) / (3 delta))`` with ``rho``
        the median distance to the centre and ``delta = f / n``).
    iterations : int
        centered_clip: clipping iterations (the centre starts at the last aggregate);
        dnc: filtering iterations whose kept sets are intersected.
    subsample : int
        dnc: coordinates drawn per iteration (default 10000; all when the model is
        smaller).
    filter_factor : float
        dnc: ``c``, each iteration removes the ``c * f`` highest outlier scores.
    noise_lambda : float
        flame: noise standard deviation as a share of the median update norm.
    server_lr : float
        signsgd_mv: the step of every coordinate in the majority's direction.
    rho : float
        zeno: weight of the size penalty ``rho * ||delta||^2`` in each update's score.
    step : float, optional
        zeno: each update is scored at ``w + step * delta`` (default ``1 / n``, its share
        of the mean of ``n`` updates).
    bucketing : int, optional
        Every rule that takes client updates (not fltrust, zeno or fedavg): random buckets
        of this many updates are averaged before the rule (Karimireddy, He & Jaggi
        2022); the rule's ``f`` stays a count of spoiled buckets.
    reproducible : bool
        bucketing, dnc, flame: derive the rule's draws (permutation, coordinates,
        noise) from the seed instead of the secret source (research only: an attacker
        who knows the seed knows them).
    root_samples : int
        fltrust, zeno: size of the server's clean root set, drawn (seeded) from the
        clients' held-out validation splits.
    root_epochs : int, optional
        fltrust: local epochs of the server's root update (default: the clients'
        ``train.local_epochs``, so the root update follows the clients' recipe).
    """

    name: str = "fedavg"
    num_malicious: Annotated[int, Field(ge=0)] | None = None
    num_selected: Annotated[int, Field(ge=1)] | None = None
    beta: Annotated[float, Field(ge=0, lt=0.5)] = 0.2
    clip_norm: Annotated[float, Field(gt=0)] | None = None
    tau: Annotated[float, Field(gt=0)] | None = None
    iterations: Annotated[int, Field(ge=1, le=100)] = 3
    root_samples: Annotated[int, Field(ge=1)] = 100
    root_epochs: Annotated[int, Field(ge=1)] | None = None
    tau_schedule: Literal["median", "fixed", "theory"] = "median"
    subsample: Annotated[int, Field(ge=1)] = 10_000
    filter_factor: Annotated[float, Field(ge=0)] = 1.0
    noise_lambda: Annotated[float, Field(ge=0)] = 0.001
    server_lr: Annotated[float, Field(gt=0)] = 0.001
    rho: Annotated[float, Field(ge=0)] = 0.0005
    step: Annotated[float, Field(gt=0)] | None = None
    bucketing: Annotated[int, Field(ge=1)] | None = None
    reproducible: bool = False

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        return check_registered(value, "defense", sorted(known_defenses()))

    def applicable(self) -> set[str]:
        draws = self.bucketing is not None or self.name in ("dnc", "flame")
        # bucketing: compat.py says why a rule refuses it
        return (
            defense_options(self.name)
            | {"name", "bucketing"}
            | ({"reproducible"} if draws else set())
        )

    @model_validator(mode="after")
    def _fields_fit_name(self) -> DefenseConfig:
        self.check_applicable(f"defense.name '{self.name}'")
        if self.tau_schedule == "fixed" and self.tau is None:
            raise field_error("tau", "tau_schedule: fixed needs a tau")
        if self.tau_schedule == "theory" and self.tau is not None:
            raise field_error("tau", "tau_schedule: theory computes tau; drop tau")
        return self
