"""``train.device``: resolving it, refusing a GPU that is not there, and where the local
loop, evaluation and attacks put the model and every batch.

Without a GPU the placement tests run on the CPU and check that every tensor reaching
the model sits on the device ``resolve_device`` returned, and that the model comes back
where it was; the CUDA tests at the end run only where torch sees a GPU.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import fedrobust.train.device as device_module
from fedrobust.config.checks import check_with_data
from fedrobust.errors import FedrobustError
from fedrobust.models import InputSpec
from fedrobust.models.build import build_model
from fedrobust.models.config import ModelConfig
from fedrobust.privacy.dpsgd import DPSGDRecipe
from fedrobust.scenario import parse_scenario
from fedrobust.train.config import TrainConfig
from fedrobust.train.device import (
    check_precision,
    check_simulation_device,
    current_device,
    on_device,
    resolve_device,
    set_deterministic,
    use_device,
)
from fedrobust.train.local import evaluate, local_train

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
SPEC = InputSpec((3, 8, 8), 4)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(autouse=True)
def _process_device_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "_process_device", None)


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, *SPEC.shape), dtype=np.float32), rng.integers(0, 4, n)


def test_auto_is_the_cpu_without_a_gpu_and_cuda_with_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.usefixtures("no_gpu")
def test_cuda_without_a_gpu_is_refused_naming_train_device() -> None:
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(FedrobustError) as info:
            resolve_device(spec)
        assert info.value.where == "train.device" and "sees no GPU" in info.value.what


def test_a_gpu_index_beyond_the_visible_ones_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(FedrobustError, match="names GPU 2, but this process sees 2"):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    ("train", "where", "words"),
    [
        ({"device": "gpu"}, "train.device", "should match pattern"),
        ({"device": "cuda:x"}, "train.device", "should match pattern"),
        ({"device": "cpu", "precision": "fp16"}, "train.precision", "fp16 needs CUDA"),
        ({"precision": "fp16", "optimizer": {"sam": {}}}, "train.precision", "optimizer.sam"),
    ],
)
def test_the_scenario_refuses_a_bad_device_or_fp16_where_it_cannot_run(
    train: dict, where: str, words: str
) -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario({"name": "x", "train": train})
    assert info.value.where == where and words in info.value.what


def test_fp16_is_refused_with_dp_sgd() -> None:
    with pytest.raises(FedrobustError) as info:
        parse_scenario(
            {
                "name": "x",
                "train": {"precision": "fp16"},
                "privacy": {"dp": {"mode": "sample", "noise_multiplier": 1.0}},
            }
        )
    assert info.value.where == "train.precision" and "DP-SGD" in info.value.what


def test_fp16_on_the_cpu_is_refused() -> None:
    check_precision("bf16", torch.device("cpu"))
    check_precision("fp16", torch.device("cuda"))
    with pytest.raises(FedrobustError) as info:
        check_precision("fp16", torch.device("cpu"))
    assert info.value.where == "train.precision"


@pytest.mark.usefixtures("no_gpu")
def test_the_server_refuses_cuda_before_round_one_and_chooses_its_device() -> None:
    scenario = parse_scenario({"name": "x", "train": {"device": "cuda"}})
    with pytest.raises(FedrobustError) as info:
        check_with_data(scenario, None)  # type: ignore[arg-type]  # refused before the data
    assert info.value.where == "train.device"
    fp16 = parse_scenario({"name": "x", "train": {"precision": "fp16"}})  # auto: the CPU here
    with pytest.raises(FedrobustError) as info:
        check_with_data(fp16, None)  # type: ignore[arg-type]
    assert info.value.where == "train.precision"
    assert current_device() == torch.device("cpu")


def test_a_simulation_needs_gpus_per_client_for_cuda() -> None:
    check_simulation_device("auto", 0)
    check_simulation_device("cuda", 0.25)
    with pytest.raises(FedrobustError) as info:
        check_simulation_device("cuda:0", 0)
    assert info.value.where == "train.device" and "gpus_per_client" in info.value.what


@pytest.mark.usefixtures("no_gpu")
def test_a_client_asked_for_cuda_without_one_fails_its_round() -> None:
    x, y = _data()
    model = build_model(ModelConfig(name="cnn"), SPEC)
    with pytest.raises(FedrobustError) as info:  # the ClientApp replies an error: client_error
        local_train(model, x, y, train=TrainConfig(device="cuda"), num_classes=4, seed=0)
    assert info.value.where == "train.device"
    with pytest.raises(FedrobustError) as info:
        local_train(model, x, y, train=TrainConfig(precision="fp16"), num_classes=4, seed=0)
    assert info.value.where == "train.precision"


class _Moves(nn.Module):
    """A model that records where it was sent and where its inputs were."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
        self.sent: list[torch.device] = []
        self.inputs: list[tuple[torch.device, torch.device]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append((x.device, self.net[1].weight.device))
        return self.net(x)

    def to(self, *args: object, **kwargs: object) -> _Moves:  # type: ignore[override]
        self.sent.append(torch.device(args[0]))  # type: ignore[arg-type]
        return super().to(*args, **kwargs)  # type: ignore[return-value]


@pytest.mark.parametrize("dp", [False, True])
def test_training_and_evaluation_put_model_and_batches_on_the_resolved_device(
    monkeypatch: pytest.MonkeyPatch, dp: bool
) -> None:
    resolved: list[torch.device] = []

    def spy(spec: str = "auto", where: str = "train.device") -> torch.device:
        resolved.append(resolve_device(spec, where))
        return resolved[-1]

    monkeypatch.setattr("fedrobust.train.local.resolve_device", spy)
    x, y = _data()
    model = _Moves()
    recipe = DPSGDRecipe(noise_multiplier=1.0, max_grad_norm=1.0, reproducible=True) if dp else None
    train = TrainConfig(batch_size=16, device="cpu")
    local_train(model, x, y, train=train, num_classes=4, seed=0, dp=recipe)
    assert resolved == [torch.device("cpu")]
    assert model.sent[0] == resolved[0] and model.sent[-1] == torch.device("cpu")  # and back
    assert model.inputs and all(xd == wd == resolved[0] for xd, wd in model.inputs)
    model.sent.clear()
    evaluate(model, x, y, 4, device="cpu")
    assert model.sent == [torch.device("cpu"), torch.device("cpu")]


def test_evaluation_without_a_device_uses_the_processs_choice() -> None:
    x, y = _data(8)
    model = _Moves()
    use_device("cpu")
    evaluate(model, x, y, 4)
    assert model.sent[0] == current_device() == torch.device("cpu")


def test_on_device_returns_the_model_where_it_was_even_on_error() -> None:
    model = _Moves()
    with pytest.raises(RuntimeError), on_device(model, torch.device("cpu")):
        raise RuntimeError("boom")
    assert model.sent == [torch.device("cpu"), torch.device("cpu")]


def test_deterministic_sets_torch_and_the_cublas_workspace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    set_deterministic(False)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    try:
        set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)


def test_deterministic_training_repeats_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # unset again afterwards
    x, y = _data()
    weights = []
    try:
        for _ in range(2):
            torch.manual_seed(0)
            model = build_model(ModelConfig(name="cnn"), SPEC)
            train = TrainConfig(batch_size=16, deterministic=True)
            local_train(model, x, y, train=train, num_classes=4, seed=1)
            weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(weights[0], weights[1])


# --- on a real GPU only -------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_learns_and_leaves_the_model_on_the_cpu(precision: str) -> None:
    x, y = _data(256)
    model = build_model(ModelConfig(name="cnn"), SPEC)
    train = TrainConfig(batch_size=32, local_epochs=3, device="cuda", precision=precision)
    result = local_train(model, x, y, train=train, num_classes=4, seed=0)
    assert np.isfinite(result.loss)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert evaluate(model, x, y, 4, device="cuda").accuracy > 0.25


@needs_cuda
def test_cuda_dp_sgd_draws_its_noise_on_the_gpu() -> None:
    x, y = _data(128)
    model = build_model(ModelConfig(name="cnn"), SPEC)
    recipe = DPSGDRecipe(noise_multiplier=1.0, max_grad_norm=1.0, reproducible=True)
    result = local_train(
        model, x, y, train=TrainConfig(batch_size=32, device="cuda"), num_classes=4, seed=0,
        dp=recipe,
    )  # fmt: skip
    assert result.epsilon is not None and result.epsilon > 0
    assert all(p.device.type == "cpu" for p in model.parameters())


@needs_cuda
def test_cuda_robust_accuracy_runs_on_the_gpu() -> None:
    from fedrobust.adversarial.evaluation import robust_accuracy

    x, y = _data(32)
    model = build_model(ModelConfig(name="cnn"), SPEC)
    figures = robust_accuracy(
        model, x, y, ["fgsm"], [0.1], num_classes=4, device=torch.device("cuda")
    )
    assert 0 <= figures["fgsm@0.1"] <= figures["clean@subset"]
    assert all(p.device.type == "cpu" for p in model.parameters())
