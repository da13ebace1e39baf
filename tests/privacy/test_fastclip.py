"""``grad_sample_mode: fast``: the same norms, clipped sums, noise and ledger as Opacus."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from fedrobust.models import InputSpec, known_models, model_inputs
from fedrobust.models.build import build_model
from fedrobust.models.config import ModelConfig
from fedrobust.privacy.config import DPConfig
from fedrobust.privacy.dpsgd import DPSGDRecipe, PrivateTraining
from fedrobust.privacy.fastclip import GhostClipper, _Conv2d, _Matmul, uncovered_layers
from fedrobust.privacy.ledger import steps_per_epoch
from fedrobust.train import local_train
from fedrobust.train.config import TrainConfig

SPEC = InputSpec((1, 8, 8), 10)
SHIPPED = [
    ModelConfig(name="cnn"),
    ModelConfig(name="mlp"),
    ModelConfig(name="mlp", hidden=[32, 16], activation="prelu"),
    ModelConfig(name="resnet", channels=[8, 16], hidden=[16]),
    ModelConfig(name="resnet", activation="leaky_relu"),
    ModelConfig(name="cnn", normalize={"mean": [0.3], "std": [0.4]}, activation="gelu"),
    ModelConfig(name="cnn", channels=[4, 8, 8], hidden=[16, 8], activation="tanh"),
]
RELATIVE = 1e-5


class Tokens(nn.Module):
    """Covered layers the shipped models do not use: LayerNorm, a Linear over positions
    (ghost norms of a dense layer), a Linear run twice (weight sharing), channel PReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 48)
        self.norm = nn.LayerNorm(48)
        self.act = nn.PReLU(8)
        self.shared = nn.Linear(48, 48, bias=False)
        self.head = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm(self.embed(x.reshape(len(x), 8, 8))))
        h = self.shared(torch.tanh(self.shared(h)))
        return self.head(h.mean(1))


class Scale(nn.Module):
    """A layer with a trainable parameter that ``fast`` has no rule for."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def models() -> list[tuple[str, nn.Module]]:
    built = []
    for cfg in SHIPPED:
        torch.manual_seed(0)
        built.append((f"{cfg.name}-{cfg.activation}", build_model(cfg, SPEC)))
    torch.manual_seed(0)
    return [*built, ("tokens", Tokens())]


MODELS = models()
IDS = [name for name, _ in MODELS]


def batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g) * 3, torch.randint(0, 10, (n,), generator=g)


def loop_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each example's gradient norm, one example at a time (the definition)."""
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    for i in range(len(y)):
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, params)
        norms.append(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
    return torch.stack(norms)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_every_registered_model_is_covered() -> None:
    for name in known_models():
        spec = InputSpec((8, 8), 10) if model_inputs(name) == "sequence" else SPEC
        assert uncovered_layers(build_model(ModelConfig(name=name), spec)) == [], name


@pytest.mark.parametrize(("name", "model"), MODELS, ids=IDS)
def test_per_example_norms_equal_a_per_example_loop(name: str, model: nn.Module) -> None:
    x, y = batch()
    clipper = GhostClipper(model)
    clipper.backward(nn.functional.cross_entropy(model(x), y))
    fast = clipper.norms()
    clipper.close()
    expected = loop_norms(model, x, y)
    assert torch.allclose(fast.double(), expected, rtol=RELATIVE, atol=0), (fast, expected)
    assert all(p.grad is None for p in model.parameters())  # no weight gradient formed


@pytest.mark.parametrize("index", [0, len(MODELS) - 1], ids=["cnn", "tokens"])
def test_both_norm_routes_are_taken(index: int) -> None:
    model = MODELS[index][1]
    clipper = GhostClipper(model)
    x, y = batch()
    clipper.backward(nn.functional.cross_entropy(model(x), y))
    clipper.norms()
    routes = set()
    for layer in clipper.layers or []:
        if isinstance(layer, _Conv2d):
            routes.add("ghost" if layer.ghost is not None else "direct")
        elif isinstance(layer, _Matmul) and layer.a.shape[1] > 1:
            routes.add("ghost" if layer.per_example is None else "direct")
    clipper.close()
    assert routes == {"ghost", "direct"}


def private_pair(
    model: nn.Module, sigma: float, clip: float, seed: int = 3, n: int = 24, batch_size: int = 8,
    **recipe: object,
) -> tuple[PrivateTraining, PrivateTraining]:  # fmt: skip
    """The same model, data and seeds under Opacus's hooks and under fast."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(n, 1, 8, 8, generator=g) * 3, torch.randint(0, 10, (n,), generator=g)
    made = []
    for mode in ("hooks", "fast"):
        copy_ = copy.deepcopy(model)
        optimizer = torch.optim.SGD(copy_.parameters(), lr=0.1)
        dp = DPSGDRecipe(sigma, clip, grad_sample_mode=mode, reproducible=True, **recipe)  # type: ignore[arg-type]
        made.append(PrivateTraining(copy_, optimizer, nn.CrossEntropyLoss(), x, y, batch_size,
                                    dp, seed=seed))  # fmt: skip
    return made[0], made[1]


def fast_private(model: nn.Module, x: torch.Tensor, y: torch.Tensor, size: int) -> PrivateTraining:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recipe = DPSGDRecipe(1.0, 1.0, grad_sample_mode="fast")
    return PrivateTraining(model, optimizer, nn.CrossEntropyLoss(), x, y, size, recipe, seed=0)


def privatised_gradients(private: PrivateTraining, dropout_seed: int = 0) -> list[torch.Tensor]:
    """The noised, scaled gradient of the first non-empty Poisson batch."""
    for xb, yb in private.epoch():
        private.optimizer.zero_grad(set_to_none=True)
        torch.manual_seed(dropout_seed)  # the same dropout mask on both paths
        private.backward(private.criterion(private.model(xb), yb))
        assert private.optimizer.pre_step()  # type: ignore[attr-defined]
        if len(yb):
            break
    grads = [p.grad.detach().clone() for p in private.optimizer.params]  # type: ignore[attr-defined]
    private.close()
    return grads


@pytest.mark.parametrize(("name", "model"), MODELS, ids=IDS)
def test_clipped_sum_without_noise_equals_opacus(name: str, model: nn.Module) -> None:
    x, y = batch(24, seed=1)
    clip = float(loop_norms(model, x, y).median())  # about half of the examples clipped
    hooks, fast = private_pair(model, sigma=0.0, clip=clip)
    assert fast.mode == "fast" and fast.clipper is not None
    expected, got = privatised_gradients(hooks), privatised_gradients(fast)
    assert relative(torch.cat([g.flatten() for g in got]),
                    torch.cat([g.flatten() for g in expected])) < RELATIVE  # fmt: skip
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        assert relative(a, b) < RELATIVE or float(b.norm()) < 1e-7


def test_clipped_sum_keeps_the_dropout_mask_of_the_forward_pass() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=[32], dropout=0.3), SPEC)
    hooks, fast = private_pair(model, sigma=0.0, clip=0.5)
    expected, got = privatised_gradients(hooks), privatised_gradients(fast)
    assert relative(torch.cat([g.flatten() for g in got]),
                    torch.cat([g.flatten() for g in expected])) < RELATIVE  # fmt: skip


@pytest.mark.parametrize(("name", "model"), MODELS[:4], ids=IDS[:4])
def test_same_noise_generator_seed_gives_the_same_noised_update(
    name: str, model: nn.Module
) -> None:
    # both paths draw N(0, (sigma C)^2) from the same generator, parameter by parameter in
    # the optimizer's order, after clipping: the same draws land on the same entries
    hooks, fast = private_pair(model, sigma=1.0, clip=0.5)
    expected, got = privatised_gradients(hooks), privatised_gradients(fast)
    assert relative(torch.cat([g.flatten() for g in got]),
                    torch.cat([g.flatten() for g in expected])) < RELATIVE  # fmt: skip
    _, other = private_pair(model, sigma=1.0, clip=0.5, seed=4)
    moved = privatised_gradients(other)
    assert relative(torch.cat([g.flatten() for g in moved]),
                    torch.cat([g.flatten() for g in expected])) > 0.1  # fmt: skip


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_a_local_round_trains_and_accounts_as_opacus(name: str) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 40)
    train = TrainConfig(local_epochs=2, batch_size=8)
    results, weights = [], []
    for mode in ("hooks", "fast"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name=name), SPEC)
        results.append(local_train(
            model, x, y, train=train, num_classes=10, seed=7, rnd=2,
            dp=DPSGDRecipe(0.8, 0.7, grad_sample_mode=mode, reproducible=True),
        ))  # fmt: skip
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    hooks, fast = results
    assert fast.privacy == hooks.privacy and fast.steps == hooks.steps
    assert fast.privacy is not None and fast.privacy.steps == 2 * steps_per_epoch(40, 8, True)
    assert fast.epsilon == hooks.epsilon and fast.epsilon is not None and fast.epsilon > 0
    assert relative(weights[1], weights[0]) < 1e-4
    assert fast.loss == pytest.approx(hooks.loss, rel=1e-4)


def test_noise_has_the_shape_and_scale_of_sigma_times_c_over_the_expected_batch() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=[64]), SPEC)
    _, fast = private_pair(model, sigma=2.0, clip=1.0, n=32, batch_size=16)
    _, quiet = private_pair(model, sigma=0.0, clip=1.0, n=32, batch_size=16)
    noise = torch.cat([(a - b).flatten() for a, b in zip(
        privatised_gradients(fast), privatised_gradients(quiet), strict=True)])  # fmt: skip
    assert float(noise.std()) == pytest.approx(2.0 * 1.0 / 16, rel=0.05)
    assert abs(float(noise.mean())) < 0.01


def test_physical_batches_sum_to_the_logical_batch() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn"), SPEC)
    _, whole = private_pair(model, sigma=1.0, clip=0.5, n=32, batch_size=16)
    _, split = private_pair(model, sigma=1.0, clip=0.5, n=32, batch_size=16,
                            max_physical_batch_size=3)  # fmt: skip
    expected = privatised_gradients(whole)
    steps = 0
    for xb, yb in split.epoch():
        split.optimizer.zero_grad(set_to_none=True)
        split.backward(split.criterion(split.model(xb), yb))
        if split.optimizer.pre_step():  # type: ignore[attr-defined]
            steps += 1
            break
        assert len(yb) <= 3
    got = [p.grad.detach().clone() for p in split.optimizer.params]  # type: ignore[attr-defined]
    split.close()
    assert steps == 1
    assert relative(torch.cat([g.flatten() for g in got]),
                    torch.cat([g.flatten() for g in expected])) < RELATIVE  # fmt: skip


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_empty_poisson_batches_are_noise_only_steps(name: str) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 3)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden=[8]), SPEC)
    result = local_train(model, x, y, train=TrainConfig(local_epochs=8, batch_size=1),
                         num_classes=10, seed=3,
                         dp=DPSGDRecipe(1.0, 1.0, grad_sample_mode="fast"))  # fmt: skip
    assert result.privacy is not None and result.privacy.steps == 8 * steps_per_epoch(3, 1, True)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_attacks_crafted_with_hooks_paused_leave_no_record_and_no_step() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn"), SPEC)
    _, fast = private_pair(model, sigma=1.0, clip=1.0)
    assert fast.clipper is not None
    history = list(fast.engine.accountant.history)
    x, y = batch()
    with fast.hooks_paused():
        x.requires_grad_(True)
        nn.functional.cross_entropy(fast.model(x), y).backward()
    assert fast.clipper.calls == {} and fast.engine.accountant.history == history
    fast.close()
    assert not any(m._forward_hooks for m in fast.model.modules())


def test_uncovered_layer_falls_back_to_opacus_hooks_with_a_warning() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), Scale(), nn.Linear(64, 10))
    with pytest.raises(ValueError, match="Scale"):
        GhostClipper(model)
    x, y = batch(16)
    with pytest.warns(UserWarning, match="grad_sample_mode 'fast' does not cover Scale"):
        private = fast_private(model, x, y, 8)
    assert private.mode == "hooks" and private.clipper is None
    for xb, yb in private.epoch():
        private.optimizer.zero_grad()
        private.backward(private.criterion(private.model(xb), yb))
        private.step()
    assert private.entry(1).steps == steps_per_epoch(16, 8, True)
    private.close()


def test_conv_variants_without_a_rule_are_named() -> None:
    model = nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Conv1d(1, 1, 3), nn.GroupNorm(1, 4))
    missing = uncovered_layers(model)
    assert len(missing) == 2 and missing[0] == "Conv1d" and missing[1].startswith("Conv2d (")
    assert "groups=2" in missing[1]
    frozen = nn.Sequential(nn.Conv1d(1, 1, 3).requires_grad_(False), nn.Linear(3, 2))
    assert uncovered_layers(frozen) == []  # frozen layers need no clipping


def test_an_in_place_activation_after_a_covered_layer_is_refused() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    clipper = GhostClipper(model)
    x, y = batch()
    with pytest.raises(RuntimeError, match="in place"):
        clipper.backward(nn.functional.cross_entropy(model(x), y % 2))
    clipper.close()


def test_fast_is_the_scenario_default_and_hooks_stays_selectable() -> None:
    assert DPConfig(mode="sample", noise_multiplier=1.0).grad_sample_mode == "fast"
    dp = DPConfig(mode="sample", noise_multiplier=1.0, grad_sample_mode="hooks")
    assert dp.grad_sample_mode == "hooks"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="resnet"), SPEC)
        x, y = batch(8)
        private = fast_private(model, x, y, 4)
    assert private.mode == "fast"
    assert not [w for w in caught if "does not cover" in str(w.message)]  # no fallback
    private.close()
