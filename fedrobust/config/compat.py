"""Cross-feature rules: which settings of one section refuse which settings of another.

Each section checks itself; what needs two sections at once lives here, in one place, and
runs from :class:`~fedrobust.scenario.Scenario`'s model validator through :func:`check`.
Every error names the dotted field to blame from the scenario's root.

Rules that need the loaded data (a source's real class count, the model's size) are in
:mod:`fedrobust.config.checks`.
"""

from __future__ import annotations

from fedrobust.config.base import field_error
from fedrobust.config.view import Scenario
from fedrobust.continual.config import BUFFER_METHODS
from fedrobust.continual.fisher_rules import check_fisher_aggregation
from fedrobust.continual.rules import check_head_methods
from fedrobust.data.config import BUNDLED_DATASETS
from fedrobust.robust.collusion import alie_z
from fedrobust.robust.config import COLLUDING_ATTACKS, AttackConfig
from fedrobust.secagg.config import resolve_params
from fedrobust.train.config import check_half_precision

#: The class count of every bundled dataset; other sources are checked on their data.
BUNDLED_CLASSES = 10


def check(scenario: Scenario) -> None:
    """Refuse a combination of sections that cannot run together.

    Raises
    ------
    FieldError
        Naming the field to change, from the scenario's root (``defense.name``).
    """
    _clients(scenario)
    _client_drift(scenario)
    _privacy(scenario)
    _poisoning(scenario)
    _secagg(scenario)
    _continual(scenario)
    check_fisher_aggregation(scenario)
    check_head_methods(scenario)
    _personalization(scenario)
    _privacy_attacks(scenario)
    _sharpness(scenario)
    _sequences(scenario)
    _limited_labels(scenario)
    _client_momentum(scenario)
    check_half_precision(scenario.train, scenario.privacy.dp.mode)


def _clients(scenario: Scenario) -> None:
    n = scenario.data.partition.num_clients
    if scenario.train.min_train_clients > n:
        raise field_error(
            "train.min_train_clients", f"is larger than data.partition.num_clients ({n})"
        )
    data = scenario.data
    if data.dataset in BUNDLED_DATASETS and data.partition.kind == "pathological":
        if data.partition.classes_per_client > BUNDLED_CLASSES:
            raise field_error(
                "data.partition.classes_per_client",
                f"is larger than the 10 classes of {data.dataset}",
            )


#: What each client-drift strategy sends beside the weights, for the refusals' messages.
DRIFT_EXTRAS = {
    "scaffold": "control-variate delta",
    "feddyn": "linear term",
    "fednova": "rescaling by a_i",
}


def _client_drift(scenario: Scenario) -> None:
    """SCAFFOLD, FedDyn and FedNova against client-level DP, robust defences and SecAgg+.

    They compose with DP-SGD (``privacy.dp.mode: sample``): their penalty terms join the
    gradient after clipping and noise, and what they compute from released weights is
    post-processing.
    """
    name = scenario.strategy.name
    if name not in DRIFT_EXTRAS:
        return
    extra = DRIFT_EXTRAS[name]
    if scenario.privacy.dp.mode == "client":
        raise field_error(
            "strategy.name",
            f"'{name}''s {extra} would escape client-level DP's clipping and noise "
            "(privacy.dp.mode: client), which bound and hide the weights alone; use "
            "DP-SGD (mode: sample), under which it is post-processing, or fedavg",
        )
    if scenario.defense.name != "fedavg":
        what = {
            "scaffold": "each client's control-variate delta cannot be screened with it",
            "feddyn": "the server cannot track each client's h_k from it",
            "fednova": "each client's a_i cannot be applied to it",
        }[name]
        raise field_error(
            "strategy.name",
            f"'{name}' does not compose with defense.name '{scenario.defense.name}': a "
            f"defence returns one synthetic aggregate, so {what}; use defense.name fedavg",
        )
    if name in ("scaffold", "feddyn") and scenario.secagg_enabled():
        state = "c_i" if name == "scaffold" else "h_k"
        raise field_error(
            "strategy.name",
            f"'{name}' needs each client's update to track its {state}, which "
            "privacy.secure_aggregation hides from the server; fednova composes with it",
        )


def _privacy(scenario: Scenario) -> None:
    dp = scenario.privacy.dp
    if dp.mode == "sample":
        if scenario.train.sampler != "none":
            raise field_error(
                "train.sampler",
                "balanced oversampling does not fit DP-SGD's Poisson sampling "
                "(privacy.dp.mode: sample)",
            )
        if dp.grad_sample_mode == "ew" and scenario.model.activation == "prelu":
            raise field_error(
                "model.activation",
                "prelu is not supported by privacy.dp.grad_sample_mode 'ew' (expanded "
                "weights); use hooks or functorch",
            )
        if scenario.adversarial.training.method in ("trades", "mart"):
            method = scenario.adversarial.training.method
            raise field_error(
                "adversarial.training.method",
                f"{method} needs a second forward pass per example, which breaks DP-SGD's "
                "per-example clipping (privacy.dp.mode: sample); use pgd_at or fgsm_rs",
            )
        if scenario.model.checkpointing:
            raise field_error(
                "model.checkpointing",
                "gradient checkpointing breaks Opacus's per-sample gradients "
                "(privacy.dp.mode: sample)",
            )
        if scenario.train.class_weights == "balanced":
            raise field_error(
                "train.class_weights",
                "balanced weights come from the client's private label counts and make "
                "an example's gradient weigh more than the clipping norm, so the noise no "
                "longer covers it (privacy.dp.mode: sample); use none",
            )
        if not dp.poisson_sampling:
            raise field_error(
                "privacy.dp.poisson_sampling",
                "shuffled batches are not what the accountant assumes: the epsilon would "
                "be an approximation, not a guarantee; use true",
            )
    if dp.mode == "client":
        if scenario.strategy.name not in ("fedavg", "fedprox"):
            raise field_error(
                "strategy.name",
                f"'{scenario.strategy.name}' transforms the noisy average, which voids the "
                "noise calibration of client-level DP (privacy.dp.mode: client); "
                "use fedavg or fedprox",
            )
        if dp.clipping == "adaptive" and dp.noise_multiplier is not None:
            sampled = scenario.sampled_per_round()
            stddev = dp.clipped_count_stddev or sampled / 20
            if dp.noise_multiplier >= 2 * stddev:
                raise field_error(
                    "privacy.dp.noise_multiplier",
                    f"must be below 2 * clipped_count_stddev = {2 * stddev:g} for "
                    "adaptive clipping (raise privacy.dp.clipped_count_stddev)",
                )


def _poisoning(scenario: Scenario) -> None:
    n = scenario.data.partition.num_clients
    attack, defense = scenario.attack, scenario.defense
    malicious = attack.num_malicious(n)
    if malicious >= n:
        raise field_error("attack.count", f"leaves no honest client among {n}")
    if scenario.data.dataset in BUNDLED_DATASETS:  # other sources: checked on their data
        for field, value in class_fields(attack):
            if value >= BUNDLED_CLASSES:
                raise field_error(field, f"class {value} is not among the 10 classes")
    if attack.kind in COLLUDING_ATTACKS and n - malicious < 2:
        raise field_error("attack.count", f"{attack.kind} needs at least 2 honest clients")
    if defense.name != "fedavg" and scenario.privacy.dp.mode == "client":
        raise field_error(
            "defense.name",
            f"'{defense.name}' combines individual updates, which voids the noise "
            "calibration of client-level DP (privacy.dp.mode: client); use fedavg",
        )
    sampled = _bucketing(scenario)
    f = scenario.defense_num_malicious()
    # Krum / Multi-Krum: n >= 2f + 3 (Blanchard et al. 2017, https://arxiv.org/abs/1703.02757);
    # Bulyan: n >= 4f + 3 (El Mhamdi et al. 2018, https://arxiv.org/abs/1802.07927).
    need = {"krum": 2 * f + 3, "multikrum": 2 * f + 3, "bulyan": 4 * f + 3}.get(defense.name)
    if need is not None and sampled < need:
        raise field_error(
            "defense.num_malicious",
            f"{defense.name} tolerating {f} attackers needs at least {need} clients per "
            f"round, but {sampled} are sampled",
        )
    if defense.name == "trimmed_mean":
        cut = int(defense.beta * sampled)  # what Flower's trim_mean cuts per side
        if cut < f:
            raise field_error(
                "defense.beta",
                f"{defense.beta:g} cuts {cut} of the {sampled} updates per round at each "
                f"end, fewer than the {f} attackers (attack.count / attack.fraction): a "
                f"trimmed mean must cut at least f per side (beta * n >= f; Yin et al. "
                f"2018); raise beta to at least {f / sampled:.3g} (below 0.5) or sample "
                "more clients",
            )
    if defense.name == "multikrum" and (defense.num_selected or 1) > sampled:
        raise field_error(
            "defense.num_selected", f"is larger than the {sampled} clients sampled per round"
        )
    from fedrobust.robust.defenses import DEFENSES

    rule = None if defense.name == "fedavg" else DEFENSES.get(defense.name)
    if rule is not None and (rule.needs_reference or rule.needs_probe):
        if scenario.data.val_fraction == 0:
            raise field_error(
                "data.val_fraction",
                f"is 0, but {defense.name} draws the server's root set from the clients' "
                "validation splits; give them some (e.g. 0.1)",
            )
    if defense.name == "zeno" and f >= sampled:
        raise field_error(
            "defense.num_malicious",
            f"zeno drops the {f} lowest-scoring updates of the {sampled} sampled per round, "
            "leaving none",
        )
    if defense.name == "dnc" and int(defense.filter_factor * f) >= sampled:
        raise field_error(
            "defense.filter_factor",
            f"dnc removes filter_factor * f = {int(defense.filter_factor * f)} of the "
            f"{sampled} updates per round, leaving none",
        )
    _alie(scenario)


def _bucketing(scenario: Scenario) -> int:
    """``defense.bucketing``: refused without a rule and for FLTrust; the number of inputs
    the rule sees per round (the clients sampled, or their buckets), against which the
    rule's checks on ``f`` run (f attackers spoil up to f buckets; Karimireddy, He &
    Jaggi 2022)."""
    defense = scenario.defense
    sampled = scenario.sampled_per_round()
    if defense.bucketing is None:
        return sampled
    if defense.name == "fedavg":
        raise field_error(
            "defense.bucketing",
            "averages updates in buckets before a robust rule; defense.name fedavg is no "
            "rule (the mean of bucket means is the mean): name one, e.g. median",
        )
    from fedrobust.robust.defenses import DEFENSES

    if not DEFENSES.get(defense.name).bucketable:
        raise field_error(
            "defense.bucketing",
            f"'{defense.name}' scores each client's own update on the server's root set; "
            "bucket means would mix honest and malicious clients' scores",
        )
    if defense.bucketing > sampled:
        raise field_error(
            "defense.bucketing", f"is larger than the {sampled} clients sampled per round"
        )
    buckets = -(-sampled // defense.bucketing)
    f = scenario.defense_num_malicious()
    if 2 * f >= buckets:
        raise field_error(
            "defense.bucketing",
            f"{sampled} updates in buckets of {defense.bucketing} make {buckets} buckets, "
            f"of which the {f} attackers can spoil {f}, a majority no rule survives "
            "(the paper's s * delta <= delta_max); use smaller buckets",
        )
    return buckets


def _alie(scenario: Scenario) -> None:
    """ALIE without a given z: Baruch et al.'s z_max must be positive for the round size."""
    attack = scenario.attack
    if attack.kind != "alie" or attack.z is not None:
        return
    n = scenario.data.partition.num_clients
    sampled = scenario.sampled_per_round()
    per_round = round(attack.num_malicious(n) * sampled / n)  # attackers in a typical round
    try:
        alie_z(sampled, per_round)
    except ValueError as exc:
        field = "attack.count" if "majority" in str(exc) else "attack.z"
        raise field_error(
            field,
            f"alie's default z (Baruch et al. 2019, z_max from {sampled} clients per round "
            f"of which {per_round} attack) is undefined: {exc}; set attack.z or change "
            "attack.count / attack.fraction",
        ) from None


def _secagg(scenario: Scenario) -> None:
    if not scenario.secagg_enabled():
        return
    where = "privacy.secure_aggregation"
    if scenario.defense.name != "fedavg":
        raise field_error(
            "defense.name",
            f"'{scenario.defense.name}' needs the individual updates, which {where} hides "
            "from the server; use fedavg (clients can bound their update norms with "
            "privacy.dp.mode: client)",
        )
    if scenario.attack.kind in COLLUDING_ATTACKS:
        raise field_error(
            "attack.kind",
            f"'{scenario.attack.kind}' attackers read the benign updates on the server, "
            f"which {where} hides",
        )
    dp = scenario.privacy.dp
    if dp.mode == "client" and (dp.side == "server" or dp.clipping == "adaptive"):
        raise field_error(
            "privacy.dp.side" if dp.side == "server" else "privacy.dp.clipping",
            f"{where} hides the individual updates: client-level DP must clip on the "
            "clients (side: client) with fixed clipping",
        )
    cfg = scenario.privacy.secure_aggregation
    assert cfg is not None
    try:
        resolve_params(cfg.params(1.0), scenario.sampled_per_round())
    except ValueError as exc:
        field, _, what = str(exc).partition(": ")
        raise field_error(f"{where}.{field}", what) from None


def _continual(scenario: Scenario) -> None:
    cl = scenario.continual
    if cl is None:
        return
    if scenario.data.dataset in BUNDLED_DATASETS:
        for i, group in enumerate(cl.tasks or []):
            if max(group) >= BUNDLED_CLASSES:
                raise field_error(f"continual.tasks.{i}", "names a class beyond the 10")
    if cl.methods() and scenario.privacy.dp.mode == "sample":
        raise field_error(
            "continual.method",
            "replay buffers, Fisher information and distillation targets come from the "
            "client's private data outside DP-SGD's accounting (privacy.dp.mode: "
            "sample); use client-level DP (mode: client)",
        )
    buffered = [m for m in cl.methods() if m in BUFFER_METHODS]
    if buffered and cl.setting == "task_incremental":
        raise field_error(
            "continual.method",
            f"{buffered[0]} would score old examples under the current task's head; use it "
            "class- or domain-incrementally",
        )
    if len(buffered) > 1:
        raise field_error(
            "continual.method",
            f"{' and '.join(buffered)} each decide how the one replay buffer enters a step "
            "(der and derpp already train on it, er_ace replays it with its own loss); "
            "keep one",
        )
    if buffered and buffered[0] != "replay" and cl.replay.mode == "union":
        raise field_error(
            "continual.replay.mode",
            f"union trains plain replay on the task's data and the buffer as one set; "
            f"{buffered[0]} draws its own buffer batch each step (use mode: mix)",
        )
    if scenario.privacy.dp.mode == "sample":
        raise field_error(
            "continual",
            "each round trains on one task's subset while DP-SGD's plan and accountant "
            "use the client's whole training set, so the printed epsilon would be "
            "wrong (privacy.dp.mode: sample); use client-level DP (mode: client)",
        )


def _personalization(scenario: Scenario) -> None:
    cfg = scenario.personalization
    if cfg is None:
        return
    if scenario.data.local_test_fraction == 0:
        raise field_error(
            "data.local_test_fraction",
            "must be > 0 with personalization: personal models are measured on each "
            "client's local test split",
        )
    if scenario.continual is not None:
        raise field_error(
            "personalization",
            "does not compose with continual learning (tasks change the head and the "
            "data a personal model is measured on); drop one of the two sections",
        )
    if cfg.method == "fedrep" and scenario.privacy.dp.mode == "sample":
        raise field_error(
            "personalization.method",
            "fedrep trains its private head outside DP-SGD, and the released body is "
            "then trained through that head (privacy.dp.mode: sample); use fedper (the "
            "head trains inside DP-SGD), ditto or finetune",
        )


def _privacy_attacks(scenario: Scenario) -> None:
    cfg = scenario.evaluation.privacy_attacks
    if cfg is None or not cfg.records_updates():
        return
    where = "evaluation.privacy_attacks"
    n = scenario.data.partition.num_clients
    if bad := [c for c in cfg.recorded_clients() if c >= n]:
        raise field_error(f"{where}.clients", f"{bad} outside 0..{n - 1} (data.partition)")
    if bad := [r for r in cfg.rounds if r > scenario.train.rounds]:
        raise field_error(f"{where}.rounds", f"{bad} beyond train.rounds ({scenario.train.rounds})")
    if scenario.secagg_enabled() and cfg.clients is not None:
        raise field_error(
            f"{where}.clients",
            "under privacy.secure_aggregation the server never sees one client's update, "
            "only the aggregate of each round (which is what it records); remove clients",
        )


def _sharpness(scenario: Scenario) -> None:
    """SAM / ASAM against DP-SGD (weight noise, drawn without the data, composes)."""
    if scenario.train.optimizer.sam is not None and scenario.privacy.dp.mode == "sample":
        raise field_error(
            "train.optimizer.sam",
            "does not compose with DP-SGD (privacy.dp.mode: sample): SAM's ascent step "
            "is taken along the batch's raw gradient, so the point the clipped, noised "
            "gradient is taken at depends on every example unclipped and unnoised, and "
            "the release leaks beyond the accountant's bound; use train.weight_noise "
            "(data-independent) or privacy.dp.mode: client",
        )


def class_fields(attack: AttackConfig) -> list[tuple[str, int]]:
    """The class ids an attack names, with their fields (for range checks)."""
    fields: list[tuple[str, int]] = []
    if attack.kind == "backdoor":
        fields.append(("attack.target_class", attack.target_class))
    for src, dst in (attack.flip_map or {}).items():
        fields += [("attack.flip_map", src), ("attack.flip_map", dst)]
    return fields


#: ``data.augment`` ops that move pixels in two dimensions: images only.
IMAGE_AUGMENTS = ("shift", "flip", "rotate")
#: Models that run one layer at every step (recurrent weights): Opacus's ghost clipping
#: refuses parameter tying.
TIED_WEIGHT_MODELS = ("gru", "lstm")


def _sequences(scenario: Scenario) -> None:
    """Image models and image operations against sequence inputs (``data.sequence``),
    sequence models against images, and DP-SGD engines the sequence models defeat."""
    from fedrobust.models import model_inputs

    data, model = scenario.data, scenario.model
    needs = model_inputs(model.name)
    if data.sequence is not None and needs == "image":
        raise field_error(
            "model.name",
            f"'{model.name}' needs images (C, H, W), but data.sequence: {data.sequence} "
            "makes sequences (T, F); use gru, lstm, transformer or mlp",
        )
    if data.sequence is None and needs == "sequence" and data.dataset in BUNDLED_DATASETS:
        raise field_error(
            "model.name",
            f"'{model.name}' needs sequences (T, F), but {data.dataset} holds images; set "
            "data.sequence: rows to read each image row by row",
        )
    dp = scenario.privacy.dp
    if dp.mode == "sample" and dp.grad_sample_mode == "ghost" and model.name in TIED_WEIGHT_MODELS:
        raise field_error(
            "privacy.dp.grad_sample_mode",
            f"Opacus's ghost clipping refuses parameter tying, and '{model.name}' runs its "
            "recurrent layer at every step; use fast (the default: ghost norms that sum "
            "over the steps), hooks, functorch or ew",
        )
    if data.sequence is None:
        return
    where = f"with data.sequence: {data.sequence} (inputs are sequences, not images)"
    for index, op in enumerate(data.augment):
        if op.name in IMAGE_AUGMENTS:
            raise field_error(
                f"data.augment.{index}",
                f"'{op.name}' moves pixels of an image, {where}; noise works on sequences",
            )
    if data.feature_shift is not None and data.feature_shift.kind == "rotate":
        raise field_error(
            "data.feature_shift.kind", f"rotate turns images, {where}; contrast works on sequences"
        )
    if model.normalize is not None:
        raise field_error("model.normalize", f"standardises image channels (C, H, W), {where}")
    continual = scenario.continual
    if continual is not None and continual.domain is not None:
        if continual.domain.kind == "rotate":
            raise field_error(
                "continual.domain.kind",
                f"rotate turns images, {where}; permute works on sequences",
            )


#: Personalization methods that train a personal model on the client's whole training
#: split (``ClientData``), labels and all, outside the local round's plan.
_TRAINS_ON_ALL_LABELS = ("finetune", "ditto", "fedrep")


def _limited_labels(scenario: Scenario) -> None:
    """``data.labeled_fraction`` and ``train.semi_supervised`` (:mod:`fedrobust.semisup`)."""
    data, semi = scenario.data, scenario.train.semi_supervised
    if data.labeled_fraction == 1:
        if semi is not None:
            raise field_error(
                "train.semi_supervised",
                "needs unlabelled data: set data.labeled_fraction below 1",
            )
        return
    if scenario.privacy.dp.mode == "sample":
        raise field_error(
            "data.labeled_fraction",
            "DP-SGD's plan and accountant use the client's whole training set while it "
            "trains on the labelled part, and the unlabelled term is not clipped per "
            "example, so the printed epsilon would be wrong (privacy.dp.mode: sample); "
            "use client-level DP (mode: client)",
        )
    if scenario.continual is not None:
        raise field_error(
            "data.labeled_fraction",
            "continual learning cuts each round's task out of the client's data by its "
            "labels, which the unlabelled part does not have; drop one of the two",
        )
    cfg = scenario.personalization
    if cfg is not None and cfg.method in _TRAINS_ON_ALL_LABELS:
        raise field_error(
            "personalization.method",
            f"'{cfg.method}' trains the personal model on the client's whole training "
            "split with every label, the ones data.labeled_fraction hides included; use "
            "fedper or fedbn",
        )
    attacks = scenario.evaluation.privacy_attacks
    if attacks is not None and "membership" in attacks.attacks:
        raise field_error(
            "evaluation.privacy_attacks.attacks",
            "membership inference counts every training example as a member, but with "
            "data.labeled_fraction < 1 the unlabelled ones were never trained on with "
            "their labels; drop membership",
        )
    if semi is not None and semi.uses_flip() and data.dataset in BUNDLED_DATASETS:
        field = "weak.flip" if semi.weak.flip else "strong.ops"
        raise field_error(
            f"train.semi_supervised.{field}",
            f"{data.dataset} holds digits, which a mirror image turns into other "
            "shapes (or classes); do not flip",
        )


def _client_momentum(scenario: Scenario) -> None:
    """``train.client_momentum`` against what takes each reply for the round's own update;
    it composes with SecAgg+, DP-SGD (post-processing), defences, continual, ditto."""
    if scenario.train.client_momentum is None:
        return
    why = None
    name, cfg = scenario.strategy.name, scenario.personalization
    if scenario.privacy.dp.mode == "client":
        why = (
            "client-level DP (privacy.dp.mode: client), whose clipping and noise are "
            "accounted for each round's update, not an average over rounds kept in client "
            "state; use DP-SGD (mode: sample), under which momentum is post-processing"
        )
    elif name in DRIFT_EXTRAS:
        why = f"strategy '{name}', whose {DRIFT_EXTRAS[name]} needs the round's own update"
    elif cfg is not None and cfg.method in ("fedper", "fedrep", "fedbn"):
        why = (
            f"personalization.method '{cfg.method}': its private layers' updates would "
            "enter the momentum the client replies from; use ditto or finetune"
        )
    if why is not None:
        raise field_error("train.client_momentum", f"does not compose with {why}")
