"""Where tensors live: ``train.device``, its precision and determinism.

:func:`resolve_device` turns ``auto | cpu | cuda | cuda:N`` into a :class:`torch.device`
(``auto``: CUDA when this process sees a GPU, else the CPU) and refuses CUDA where none
is visible, naming ``train.device``: the CLI and the ServerApp refuse it before round 1
(:func:`fedrobust.config.checks.check_with_data`); on a client the round fails and the
server counts a ``client_error``.

Models move to the device for the work and back afterwards (:func:`on_device`): what
leaves a step (state dicts, replies, ``context.state``) stays on the CPU, so tensors
cross to numpy only at the message boundary. Batches are cut on the CPU, in the same
order on every device, and copied over without blocking (from pinned memory on CUDA).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

from fedrobust.errors import FedrobustError

FIELD = "train.device"
#: What ``train.device`` accepts.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
#: cuBLAS's workspace setting for deterministic matrix products on CUDA.
CUBLAS_WORKSPACE = ":4096:8"

_process_device: torch.device | None = None


def resolve_device(spec: str = "auto", where: str = FIELD) -> torch.device:
    """The device ``spec`` names, for this process.

    Parameters
    ----------
    spec : str
        ``auto`` (CUDA when a GPU is visible to this process, else the CPU) | ``cpu`` |
        ``cuda`` | ``cuda:N``.
    where : str
        The field an error names.

    Raises
    ------
    FedrobustError
        ``spec`` is not one of those, or asks for a GPU this process cannot see.
    """
    if not DEVICE_PATTERN.match(spec):
        raise FedrobustError(where, f"'{spec}' is not auto, cpu, cuda or cuda:N")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise FedrobustError(
            where,
            f"'{spec}' asks for CUDA, but this process sees no GPU (torch "
            f"{torch.__version__}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}); use auto or cpu, or "
            "give simulation.gpus_per_client > 0 in a simulation",
        )
    device = torch.device(spec)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise FedrobustError(
            where, f"'{spec}' names GPU {device.index}, but this process sees {count}"
        )
    return device


def check_precision(precision: str, device: torch.device, where: str = "train.precision") -> None:
    """Refuse ``fp16`` off CUDA: CPU autocast runs bf16 only, and float16 on the CPU
    would need the gradient scaler's CUDA kernels."""
    if precision == "fp16" and device.type != "cuda":
        raise FedrobustError(
            where, f"fp16 needs CUDA, but train.device resolves to {device}; use bf16 or fp32"
        )


def autocast(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """The forward pass's autocast on ``device``: bf16 or fp16 (``precision``), or none."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16's loss scaler (gradients that would underflow in float16 are scaled up)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def set_deterministic(on: bool) -> None:
    """``train.deterministic``: torch's deterministic algorithms (an error where an
    operation has none) and cuBLAS's fixed workspace; off leaves torch's defaults."""
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter (or buffer) lives; the CPU for an empty model."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def on_device(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """``model`` on ``device`` for the block, then back where it was (in place)."""
    home = model_device(model)
    model.to(device)
    try:
        yield model
    finally:
        model.to(home)


def to_device(
    tensor: torch.Tensor, device: torch.device, non_blocking: bool = True
) -> torch.Tensor:
    """``tensor`` on ``device``; a CPU tensor bound for CUDA is pinned first, so the
    copy does not block."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=non_blocking)


def check_simulation_device(spec: str, gpus_per_client: float) -> None:
    """A simulation's clients see a GPU only with ``simulation.gpus_per_client`` > 0
    (Ray hides the GPUs from a worker that reserved none): ``cuda`` without it would
    fail every client's round."""
    if spec.startswith("cuda") and gpus_per_client == 0:
        raise FedrobustError(
            FIELD,
            f"'{spec}' in a simulation needs simulation.gpus_per_client > 0 (e.g. 0.25: "
            "four clients share a GPU); Ray hides the GPUs from clients that reserve none",
        )


def use_device(spec: str) -> torch.device:
    """Resolve ``spec`` and make it this process's device for work that is given none
    (the server's evaluation: :func:`current_device`)."""
    global _process_device
    _process_device = resolve_device(spec)
    return _process_device


def current_device() -> torch.device:
    """The device :func:`use_device` chose for this process; the CPU before any."""
    return _process_device if _process_device is not None else torch.device("cpu")
