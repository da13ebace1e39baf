"""Export a trained model for small devices, with int8 quantisation, and measure both.

``torchscript``: ``torch.jit.trace`` of the model; ``int8`` applies PyTorch's dynamic
quantisation (``torch.ao.quantization.quantize_dynamic``), which covers ``nn.Linear``
layers only: convolutions stay float32.

``onnx``: ``torch.onnx.export`` (opset 18, dynamic batch size); ``int8`` applies
ONNX Runtime's dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``),
which covers MatMul/Gemm and Conv (``MatMulInteger``/``ConvInteger``).

Every figure is measured on the exported file itself, loaded back in its runtime
(``torch.jit.load`` or an ONNX Runtime session): file size, accuracy on the run's
held-out test set, and single-threaded inference time per example.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedrobust.train.threads import torch_threads

FORMATS = ("torchscript", "onnx")
QUANTIZATIONS = ("int8",)
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Exported:
    """One exported file and what it measured.

    Parameters
    ----------
    variant : str
        ``float32`` or ``int8``.
    format : str
        ``torchscript`` or ``onnx``.
    path : Path
        The file.
    size_bytes : int
        Its size on disk.
    accuracy : float
        Test accuracy of the file, run in its own runtime.
    ms_per_example : float
        Single-threaded inference time over the test set, per example.
    quantized : str
        What the int8 pass converted ("-" for float32).
    """

    variant: str
    format: str
    path: Path
    size_bytes: int
    accuracy: float
    ms_per_example: float
    quantized: str

    def to_dict(self) -> dict[str, object]:
        row = asdict(self)
        row["path"] = str(self.path)
        return row


def _measure(
    predict: Predict, x: np.ndarray, y: np.ndarray, batch: int = 256
) -> tuple[float, float]:
    """(accuracy, ms per example) of ``predict`` over ``x`` in batches."""
    predict(x[:1])  # warm-up: the first call builds kernels and plans
    started = time.perf_counter()
    hits = 0
    for start in range(0, len(y), batch):
        logits = predict(x[start : start + batch])
        hits += int((logits.argmax(axis=1) == y[start : start + batch]).sum())
    elapsed = time.perf_counter() - started
    return hits / len(y), 1000.0 * elapsed / len(y)


def _linear_share(model: nn.Module) -> str:
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    total = sum(p.numel() for p in model.parameters())
    share = sum(m.weight.numel() for m in linear) / total if total else 0.0
    layers = f"{len(linear)} Linear layers; convolutions stay float32"
    return f"{share:.1%} of parameters int8 ({layers})"


def _torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # torch.jit is deprecated but still the mobile format
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path))


def _load_torchscript(path: Path) -> Predict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path))
    module.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return predict


def _onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            model, (example,), str(path), dynamo=True, opset_version=18,
            input_names=["x"], output_names=["logits"], dynamic_shapes=({0: batch},),
            external_data=False,
        )  # fmt: skip


def _load_onnx(path: Path) -> Predict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0])

    return predict


def _quantize_onnx(src: Path, dst: Path) -> str:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs advice on pre-processing at WARNING
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    graph = onnx.load(str(dst)).graph
    ops = sorted({n.op_type for n in graph.node if n.op_type.endswith("Integer")})
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    int8 = sum(n for t, n in zip(graph.initializer, sizes.values(), strict=True)
               if t.data_type == onnx.TensorProto.INT8)  # fmt: skip
    floats = sum(n for t, n in zip(graph.initializer, sizes.values(), strict=True)
                 if t.data_type == onnx.TensorProto.FLOAT)  # fmt: skip
    share = int8 / (int8 + floats) if int8 + floats else 0.0
    return f"{share:.1%} of parameters int8 ({', '.join(ops) or 'no op quantised'})"


def export_model(
    model: nn.Module,
    x_test: np.ndarray,
    y_test: np.ndarray,
    out_dir: Path,
    fmt: str,
    quantize: str | None = None,
) -> list[Exported]:
    """Export ``model`` as ``fmt`` (and its ``quantize`` variant); measure each file.

    Parameters
    ----------
    model : nn.Module
        The trained float32 model.
    x_test, y_test : np.ndarray
        The held-out test set the figures are measured on.
    out_dir : Path
        Gets ``model<suffix>`` and ``model-int8<suffix>``.
    fmt : str
        ``torchscript`` or ``onnx``.
    quantize : str, optional
        ``int8`` adds a dynamically quantised copy.

    Returns one :class:`Exported` per file, float32 first.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantisation '{quantize}'; known: {', '.join(QUANTIZATIONS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.from_numpy(np.ascontiguousarray(x_test[:2], dtype=np.float32))
    x = np.ascontiguousarray(x_test, dtype=np.float32)
    base = out_dir / f"model{SUFFIX[fmt]}"
    files: list[tuple[str, Path, str]] = [("float32", base, "-")]
    if fmt == "torchscript":
        _torchscript(model, example, base)
        load = _load_torchscript
        if quantize == "int8":
            with warnings.catch_warnings():  # quantized dtypes are deprecated, still supported
                warnings.simplefilter("ignore")
                quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, torch.qint8)
            path = out_dir / f"model-int8{SUFFIX[fmt]}"
            _torchscript(quantized, example, path)
            files.append(("int8", path, _linear_share(model)))
    else:
        _onnx(model, example, base)
        load = _load_onnx
        if quantize == "int8":
            path = out_dir / f"model-int8{SUFFIX[fmt]}"
            files.append(("int8", path, _quantize_onnx(base, path)))
    results = []
    with torch_threads(1):
        for variant, path, what in files:
            accuracy, ms = _measure(load(path), x, y_test)
            results.append(Exported(variant, fmt, path, path.stat().st_size, accuracy, ms, what))
    return results


def export_table(rows: list[Exported]) -> str:
    """A markdown table of ``rows``; sizes and accuracy changes relative to float32."""
    ref = rows[0]
    lines = [
        "| variant | format | file | size (KiB) | vs float32 | test accuracy | change (points) "
        "| ms/example | quantised |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.variant} | {row.format} | {row.path.name} | {row.size_bytes / 1024:.1f} "
            f"| {row.size_bytes / ref.size_bytes:.2f}x | {row.accuracy:.4f} "
            f"| {100 * (row.accuracy - ref.accuracy):+.2f} | {row.ms_per_example:.3f} "
            f"| {row.quantized} |"
        )
    return "\n".join(lines) + "\n"
