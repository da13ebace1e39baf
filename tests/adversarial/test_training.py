"""Adversarial training: composes with Opacus, and buys robustness (measured)."""

from __future__ import annotations

import numpy as np
import torch

from fedrobust.adversarial.client import adversarial_plugin
from fedrobust.adversarial.evaluation import robust_accuracy
from fedrobust.adversarial.training import AdversarialExamples
from fedrobust.attacks import create_attack
from fedrobust.data import build_federation
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.privacy.dpsgd import DPSGDRecipe, PrivateTraining
from fedrobust.scenario import AdversarialTrainingConfig, ModelConfig, TrainConfig, parse_scenario
from fedrobust.train import evaluate, local_train


def test_generation_under_opacus_equals_plain_and_leaves_no_trace() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn"), InputSpec((1, 8, 8), 10))
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    torch.manual_seed(1)
    plain = create_attack("pgd", model, 0.1, steps=5)(x, y)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    private = PrivateTraining(model, optimizer, torch.nn.CrossEntropyLoss(), x, y, 8,
                              DPSGDRecipe(1.0, 1.0), seed=0)  # fmt: skip
    history = list(private.engine.accountant.history)
    with private.hooks_paused():
        torch.manual_seed(1)
        wrapped = create_attack("pgd", model, 0.1, steps=5)(x, y)
    assert torch.equal(plain, wrapped)
    assert all(getattr(p, "grad_sample", None) is None for p in model.parameters())
    assert private.engine.accountant.history == history  # no accountant step
    # and the next private step sees one batch's per-sample gradients only
    xb, yb = next(iter(private.epoch()))
    private.optimizer.zero_grad()
    private.criterion(private.model(xb), yb).backward()
    assert all(p.grad_sample.shape[0] == len(yb) for p in model.parameters())
    private.close()


def test_dp_training_with_adversarial_examples_runs_and_counts_only_dp_steps() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 64)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=[16]), InputSpec((1, 8, 8), 10))
    plugin = AdversarialExamples("pgd", 0.1, 0.05, 3, 1.0, 10, seed=0)
    result = local_train(
        model, x, y, train=TrainConfig(batch_size=16), num_classes=10, seed=0,
        plugins=(plugin,), dp=DPSGDRecipe(1.0, 1.0),
    )  # fmt: skip
    assert result.privacy is not None and result.privacy.steps == result.steps == 4


def test_pgd_adversarial_training_raises_pgd_robust_accuracy_far_above_plain() -> None:
    sc = parse_scenario(
        {"name": "a", "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 1}}}
    )
    fed = build_federation(sc.data, 0)
    data = fed.clients[0]
    train = TrainConfig(local_epochs=5, batch_size=32, optimizer={"lr": 0.05})
    results = {}
    for method in ("none", "pgd_at"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="mlp", hidden=[128]), fed.spec)
        cfg = AdversarialTrainingConfig(method=method) if method == "none" else \
            AdversarialTrainingConfig(method=method, eps=0.2, steps=3)  # fmt: skip
        local_train(model, data.x_train, data.y_train, train=train, num_classes=10, seed=0,
                    plugins=tuple(filter(None, [adversarial_plugin(cfg, 1, 10, 0)])))  # fmt: skip
        robust = robust_accuracy(model, fed.x_test, fed.y_test, ["pgd"], [0.2], steps=10)
        clean = evaluate(model, fed.x_test, fed.y_test, 10).accuracy
        results[method] = (clean, robust["pgd@0.2"])
    (_, plain_robust), (at_clean, at_robust) = results["none"], results["pgd_at"]
    # measured: PGD-10@0.2 robust accuracy 0.05 plain vs 0.36 with PGD-AT; clean 0.96 vs 0.92
    assert at_robust > plain_robust + 0.2, results
    assert at_clean > 0.85, results
