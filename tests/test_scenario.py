"""Scenario schema: bad inputs name their dotted path; every shipped scenario validates."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedrobust.errors import FedrobustError
from fedrobust.scenario import Scenario, load_scenario, parse_scenario, scenario_to_yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = {"name": "t", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 3}}}


def with_(path: str, value: object, *more: object) -> dict:
    """BASE with ``path`` set to ``value`` (and further path, value pairs)."""
    raw = copy.deepcopy(BASE)
    pairs = [(path, value), *zip(more[::2], more[1::2], strict=True)]
    for dotted, item in pairs:
        node = raw
        parts = str(dotted).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = item
    return raw


BAD = [
    # (scenario, dotted path in the message, words in the message)
    (with_("colour", "red"), "colour", "unknown key"),
    (with_("data.partition.colour", 1), "data.partition.colour", "unknown key"),
    (with_("train.optimizer.betas", [0.9]), "train.optimizer.betas", "unknown key"),
    ({"seed": 1}, "name", "required"),
    (with_("seed", -1), "seed", "greater than or equal"),
    (with_("seed", "abc"), "seed", "integer"),
    (with_("data.dataset", "cifar-1000"), "data.dataset", "known: mnist-5k, digits"),
    (with_("data.dataset", "npz:"), "data.dataset", "needs a name or path"),
    (with_("data.test_fraction", 1.5), "data.test_fraction", "less than 1"),
    (with_("data.partition.kind", "zipf"), "data.partition.kind", "iid"),
    (with_("data.partition.num_clients", 0), "data.partition.num_clients", "greater than"),
    (
        with_("data.partition.alpha", 0.3),
        "data.partition.alpha",
        "does not apply to partition kind 'iid'",
    ),
    (
        with_("data.partition", {"kind": "dirichlet", "num_clients": 3, "alpha": -1}),
        "data.partition.alpha",
        "greater than 0",
    ),
    (
        with_("data.partition", {"kind": "size", "num_clients": 3, "sizes": [10, 20]}),
        "data.partition.sizes",
        "2 entries but num_clients is 3",
    ),
    (
        with_("data.partition", {"kind": "size", "num_clients": 2}),
        "data.partition.sizes",
        "required",
    ),
    (
        with_(
            "data.partition", {"kind": "pathological", "num_clients": 3, "classes_per_client": 11}
        ),
        "data.partition.classes_per_client",
        "10 classes",
    ),
    (with_("data.imbalance", {"ratio": 0}), "data.imbalance.ratio", "greater than 0"),
    (with_("data.limited", {"fraction": 0.5, "max_samples": 3}), "data.limited", "exactly one"),
    (
        with_("data.label_noise", {"kind": "asym", "rate": 0.2}),
        "data.label_noise.kind",
        "symmetric",
    ),
    (with_("data.label_noise", {"rate": 1.0}), "data.label_noise.rate", "less than 1"),
    (with_("model.name", "vit"), "model.name", "known: cnn, gru, lstm, mlp"),
    (
        with_("model", {"name": "mlp", "channels": [8]}),
        "model.channels",
        "does not apply to model 'mlp'",
    ),
    (with_("train.rounds", 0), "train.rounds", "greater than or equal to 1"),
    (with_("train.batch_size", 2.5), "train.batch_size", "integer"),
    (with_("train.optimizer.name", "lbfgs"), "train.optimizer.name", "sgd"),
    (with_("train.optimizer.lr", 0), "train.optimizer.lr", "greater than 0"),
    (
        with_("train.optimizer", {"name": "adam", "nesterov": True}),
        "train.optimizer.nesterov",
        "needs optimizer 'sgd'",
    ),
    (with_("train.fraction_train", 0), "train.fraction_train", "greater than 0"),
    (with_("train.min_train_clients", 5), "train.min_train_clients", "num_clients (3)"),
    (with_("strategy.name", "fedsgd"), "strategy.name", "fedavg"),
    (
        with_("strategy.proximal_mu", 0.1),
        "strategy.proximal_mu",
        "does not apply to strategy 'fedavg'",
    ),
    (with_("simulation.cpus_per_client", 0), "simulation.cpus_per_client", "greater than"),
    (with_("name", "bad name/with slash"), "name", "pattern"),
    (
        with_("train.loss", {"name": "gce", "gamma": 1.0}),
        "train.loss.gamma",
        "does not apply to loss 'gce'",
    ),
    (with_("train.loss", {"name": "huber"}), "train.loss.name", "cross_entropy"),
    (
        with_("train.lr_schedule", {"name": "step", "min_lr": 0.1}),
        "train.lr_schedule.min_lr",
        "does not apply",
    ),
    (with_("train.early_stopping", {"metric": "f1"}), "train.early_stopping.metric", "accuracy"),
    (with_("train.grad_clip", 0), "train.grad_clip", "greater than 0"),
    (with_("train.precision", "fp8"), "train.precision", "bf16"),
    (
        with_("model", {"name": "cnn", "checkpointing": True}),
        "model.checkpointing",
        "does not apply to model 'cnn'",
    ),
    (with_("model.activation", "swish"), "model.activation", "relu"),
    (with_("data.augment", [{"name": "mixup"}]), "data.augment.0", "shift"),
    (
        with_("data.augment", [{"name": "rotate", "degrees": 500}]),
        "data.augment.0.rotate.degrees",
        "less than",
    ),
    (
        with_("privacy.dp", {"mode": "sample", "noise_multiplier": 1.0, "target_epsilon": 3}),
        "privacy.dp.noise_multiplier",
        "exactly one",
    ),
    (with_("privacy.dp", {"mode": "sample"}), "privacy.dp.noise_multiplier", "exactly one"),
    (
        with_("privacy.dp", {"mode": "sample", "noise_multiplier": 1, "max_grad_norm": -1}),
        "privacy.dp.max_grad_norm",
        "greater than 0",
    ),
    (
        with_("privacy.dp", {"mode": "sample", "noise_multiplier": 1, "accountant": "moments"}),
        "privacy.dp.accountant",
        "rdp",
    ),
    (
        with_("privacy.dp", {"mode": "sample", "noise_multiplier": 1, "delta": 1.5}),
        "privacy.dp.delta",
        "less than 1",
    ),
    (
        with_("privacy.dp", {"mode": "sample", "noise_multiplier": 1, "grad_sample_mode": "x"}),
        "privacy.dp.grad_sample_mode",
        "hooks",
    ),
    (
        with_("privacy.dp", {"mode": "none", "noise_multiplier": 1.0}),
        "privacy.dp.noise_multiplier",
        "does not apply to privacy.dp.mode 'none'",
    ),
    (
        with_("privacy.dp", {"mode": "client", "noise_multiplier": 1, "max_grad_norm": 1}),
        "privacy.dp.max_grad_norm",
        "does not apply to privacy.dp.mode 'client'",
    ),
    (
        with_("privacy.dp", {"mode": "client", "noise_multiplier": 1, "clip_norm_lr": 0.1}),
        "privacy.dp.clip_norm_lr",
        "does not apply",
    ),
    (
        with_("privacy.dp", {"mode": "sample", "target_epsilon": 3, "epsilon_budget": 2}),
        "privacy.dp.epsilon_budget",
        "set one",
    ),
    (
        with_(
            "privacy.dp", {"mode": "client", "noise_multiplier": 1.0}, "strategy.name", "fedadam"
        ),
        "strategy.name",
        "voids the noise calibration",
    ),
    (
        with_("privacy.dp", {"mode": "client", "noise_multiplier": 1.0, "clipping": "adaptive"}),
        "privacy.dp.noise_multiplier",
        "clipped_count_stddev",
    ),
    (
        with_(
            "privacy.dp", {"mode": "sample", "noise_multiplier": 1.0}, "train.sampler", "balanced"
        ),
        "train.sampler",
        "Poisson",
    ),
    (
        with_(
            "privacy.dp",
            {"mode": "sample", "noise_multiplier": 1.0, "grad_sample_mode": "ew"},
            "model.activation",
            "prelu",
        ),
        "model.activation",
        "expanded weights",
    ),
    (
        with_("adversarial.evaluation", {"attacks": ["pgd", "deepfoool"]}),
        "adversarial.evaluation.attacks.1",
        "unknown attack 'deepfoool'; known: apgd",
    ),
    (
        with_("adversarial.evaluation", {"eps": [0.1, 2.0]}),
        "adversarial.evaluation.eps.1",
        "less than or equal to 1",
    ),
    (
        with_("adversarial.training", {"method": "pgd_at", "eps": 0}),
        "adversarial.training.eps",
        "greater than 0",
    ),  # fmt: skip
    (
        with_("adversarial.training", {"method": "pgd_at", "beta": 1.0}),
        "adversarial.training.beta",
        "does not apply to adversarial.training.method 'pgd_at'",
    ),
    (with_("adversarial.training.method", "free_at"), "adversarial.training.method", "pgd_at"),
    (
        with_(
            "privacy.dp",
            {"mode": "sample", "noise_multiplier": 1.0},
            "adversarial.training",
            {"method": "trades"},
        ),
        "adversarial.training.method",
        "per-example clipping",
    ),
    (
        with_(
            "privacy.dp",
            {"mode": "sample", "noise_multiplier": 1.0},
            "adversarial.training",
            {"method": "mart"},
        ),
        "adversarial.training.method",
        "mart needs a second forward pass",
    ),
    (
        with_("adversarial.training", {"method": "mart", "ratio": 0.5}),
        "adversarial.training.ratio",
        "does not apply to adversarial.training.method 'mart'",
    ),
    (with_("privacy.audit", {"canaries": 3}), "privacy.audit.canaries", "greater than"),
    (with_("attack.kind", "lie"), "attack.kind", "label_flip"),
    (with_("attack", {"kind": "sign_flip", "noise_std": 2}), "attack.noise_std", "sign_flip"),
    (with_("attack", {"kind": "gaussian", "count": 3}), "attack.count", "no honest client"),
    (
        with_("attack", {"kind": "ipm", "fraction": 0.5, "count": 1}),
        "attack.count",
        "not both",
    ),
    (with_("attack", {"kind": "alie", "count": 2}), "attack.count", "at least 2 honest"),
    (
        with_("attack", {"kind": "backdoor", "target_class": 10}),
        "attack.target_class",
        "not among the 10 classes",
    ),
    (
        with_("attack", {"kind": "label_flip", "flip_map": {1: 12}}),
        "attack.flip_map",
        "not among the 10 classes",
    ),
    (with_("defense.name", "foolsgold"), "defense.name", "krum"),
    (
        with_("continual", {"setting": "class_incremental", "tasks": [[0, 1]]}),
        "continual.tasks",
        "at least 2 class groups",
    ),
    (
        with_("continual", {"setting": "class_incremental", "tasks": [[0, 1], [1, 2]]}),
        "continual.tasks.1",
        "more than one place",
    ),
    (
        with_("continual", {"setting": "task_incremental", "tasks": [[0], [11]]}),
        "continual.tasks.1",
        "beyond the 10",
    ),
    (
        with_("continual", {"setting": "domain_incremental", "tasks": [[0], [1]]}),
        "continual.tasks",
        "domain_incremental",
    ),
    (
        with_(
            "continual", {"setting": "class_incremental", "tasks": [[0], [1]], "method": "ewc+si"}
        ),
        "continual.method",
        "unknown method 'si'",
    ),  # fmt: skip
    (
        with_(
            "continual", {"setting": "class_incremental", "tasks": [[0], [1]], "ewc": {"lamda": 1}}
        ),
        "continual.ewc.lamda",
        "unknown key",
    ),  # fmt: skip
    (
        with_(
            "continual",
            {"setting": "class_incremental", "tasks": [[0], [1]], "method": "replay"},
            "privacy.dp",
            {"mode": "sample", "noise_multiplier": 1.0},
        ),
        "continual.method",
        "outside DP-SGD's accounting",
    ),  # fmt: skip
    (
        with_(
            "continual", {"setting": "task_incremental", "tasks": [[0], [1]], "method": "replay"}
        ),
        "continual.method",
        "current task's head",
    ),  # fmt: skip
    (
        with_("privacy.secure_aggregation", {"num_shares": 2}),
        "privacy.secure_aggregation.num_shares",
        "at least 3",
    ),
    (
        with_("privacy.secure_aggregation", {"reconstruction_threshold": 1}),
        "privacy.secure_aggregation.reconstruction_threshold",
        "must be in [2",
    ),
    (
        with_("privacy.secure_aggregation", {"modulus_range": 3000}),
        "privacy.secure_aggregation.modulus_range",
        "power of two",
    ),
    (
        with_("privacy.secure_aggregation", {"timeout": 0}),
        "privacy.secure_aggregation.timeout",
        "greater than 0",
    ),
    (
        with_(
            "privacy.secure_aggregation", {"simulate_dropout": {"stage": "setup", "fraction": 0.1}}
        ),
        "privacy.secure_aggregation.simulate_dropout.stage",
        "share_keys",
    ),
    (
        with_("privacy.secure_aggregation", {}, "defense.name", "median"),
        "defense.name",
        "individual updates",
    ),
    (
        with_(
            "privacy.secure_aggregation",
            {},
            "attack",
            {"kind": "alie", "count": 1},
            "data.partition.num_clients",
            5,
        ),
        "attack.kind",
        "benign updates",
    ),
    (
        with_(
            "privacy.secure_aggregation",
            {},
            "privacy.dp",
            {"mode": "client", "noise_multiplier": 0.5, "side": "server"},
        ),
        "privacy.dp.side",
        "clip on the clients",
    ),
    (with_("defense", {"name": "median", "beta": 0.1}), "defense.beta", "'median'"),
    (with_("defense", {"name": "trimmed_mean", "beta": 0.5}), "defense.beta", "less than 0.5"),
    (
        with_("defense", {"name": "krum", "num_malicious": 1}),
        "defense.num_malicious",
        "needs at least 5 clients per round, but 3",
    ),
    (
        with_("defense", {"name": "multikrum", "num_selected": 4}),
        "defense.num_selected",
        "larger than the 3 clients",
    ),
    (
        with_(
            "privacy.dp",
            {"mode": "client", "noise_multiplier": 1.0, "clipping_norm": 1.0},
            "defense.name",
            "median",
        ),
        "defense.name",
        "client-level DP",
    ),
]


@pytest.mark.parametrize(("raw", "path", "words"), BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_bad_scenario_names_the_dotted_path(raw: dict, path: str, words: str) -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario(raw)
    assert info.value.where == path
    assert words in info.value.what


def test_defaults_fill_a_minimal_scenario() -> None:
    scenario = parse_scenario({"name": "mini"})
    assert scenario.data.dataset == "mnist-5k"
    assert scenario.train.optimizer.name == "sgd"
    assert scenario.strategy.name == "fedavg"


def test_resolved_scenario_round_trips() -> None:
    scenario = parse_scenario(
        with_("data.partition", {"kind": "dirichlet", "num_clients": 4, "alpha": 0.1})
    )
    again = Scenario.model_validate_json(scenario.model_dump_json())
    assert again == scenario
    assert again.digest() == scenario.digest()


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_bundled_scenario_survives_the_trip_to_the_clients_and_back_to_yaml(
    path: Path,
) -> None:
    scenario = load_scenario(path)
    assert Scenario.model_validate_json(scenario.model_dump_json()) == scenario  # the recipe
    assert parse_scenario(yaml.safe_load(scenario_to_yaml(scenario))) == scenario


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ndata:\n  dataset: [digits\n  test_fraction: 0.2\n")
    with pytest.raises(FedrobustError) as info:
        load_scenario(path)
    assert info.value.where.startswith(f"{path}:line ")
    assert "YAML syntax error" in info.value.what


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nseed: 1\nseed: 2\n")
    with pytest.raises(FedrobustError, match="duplicate key 'seed'"):
        load_scenario(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FedrobustError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(FedrobustError, match="empty"):
        load_scenario(tmp_path / "empty.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(FedrobustError, match="mapping"):
        load_scenario(tmp_path / "list.yaml")


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(scenario_to_yaml(parse_scenario(BASE)))
    scenario = load_scenario(path, {"train.rounds": 3, "seed": 9})
    assert (scenario.train.rounds, scenario.seed) == (3, 9)
    with pytest.raises(FedrobustError) as info:
        load_scenario(path, {"train.rounds": 0})
    assert info.value.where == "train.rounds"


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_scenario_validates_and_its_resolved_form_too(path: Path) -> None:
    scenario = load_scenario(path)
    assert parse_scenario(yaml.safe_load(scenario_to_yaml(scenario))) == scenario


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedrobust.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_validate_prints_resolved_scenario() -> None:
    result = _cli("validate", str(ROOT / "scenarios" / "quickstart.yaml"))
    assert result.returncode == 0, result.stderr
    assert "name: quickstart" in result.stdout
    assert "weight_decay: 0.0" in result.stdout  # a default, filled in


def test_cli_validate_bad_scenario_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata:\n  partition:\n    kind: iid\n    alpha: 0.5\n")
    result = _cli("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: data.partition.alpha: does not apply to partition kind 'iid'"
    )
    assert "Traceback" not in result.stderr
