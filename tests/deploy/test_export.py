"""Model export: the files load in their runtimes, int8 is smaller, figures are measured."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fedrobust.data import build_federation
from fedrobust.deploy.export import export_model, export_table
from fedrobust.models.build import build_model
from fedrobust.scenario import parse_scenario
from fedrobust.train import evaluate
from tests.deploy.test_cli_deploy import cli

SC = parse_scenario(
    {"name": "ex", "seed": 1,
     "data": {"dataset": "digits", "partition": {"kind": "iid", "num_clients": 2}},
     "model": {"name": "cnn"}}
)  # fmt: skip


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    fed = build_federation(SC.data, SC.seed)
    torch.manual_seed(0)
    model = build_model(SC.model, fed.spec)
    x = torch.from_numpy(np.concatenate([c.x_train for c in fed.clients]))
    y = torch.from_numpy(np.concatenate([c.y_train for c in fed.clients]))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(5):
        for i in range(0, len(y), 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
            opt.step()
    return model.eval(), fed.x_test, fed.y_test


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_float32_file_scores_what_the_model_scores_and_int8_is_smaller(
    tmp_path, trained, fmt
) -> None:
    model, x, y = trained
    reference = evaluate(model, x, y, 10).accuracy
    assert reference > 0.8  # a trained model, so a broken export would show
    rows = export_model(model, x, y, tmp_path, fmt, "int8")
    fp32, int8 = rows
    assert (fp32.variant, int8.variant) == ("float32", "int8")
    assert fp32.path.is_file() and int8.path.is_file()
    assert fp32.size_bytes == fp32.path.stat().st_size
    assert fp32.accuracy == pytest.approx(reference, abs=1e-9)  # the file, not the model
    assert int8.size_bytes < fp32.size_bytes
    assert abs(int8.accuracy - fp32.accuracy) < 0.05
    assert "int8" in int8.quantized and fp32.ms_per_example > 0
    table = export_table(rows)
    assert f"{int8.size_bytes / fp32.size_bytes:.2f}x" in table


def test_int8_onnx_runs_integer_kernels_and_torchscript_quantises_linear_only(
    tmp_path, trained
) -> None:
    import onnx

    model, x, y = trained
    onnx_rows = export_model(model, x, y, tmp_path / "o", "onnx", "int8")
    ops = {n.op_type for n in onnx.load(str(onnx_rows[1].path)).graph.node}
    assert {"MatMulInteger", "ConvInteger"} <= ops
    ts_rows = export_model(model, x, y, tmp_path / "t", "torchscript", "int8")
    assert "convolutions stay float32" in ts_rows[1].quantized
    loaded = torch.jit.load(str(ts_rows[1].path))
    assert "LinearPackedParams" in str(loaded)  # the int8 Linear's packed weights
    assert "LinearPackedParams" not in str(torch.jit.load(str(ts_rows[0].path)))


def test_export_without_quantisation_writes_one_file(tmp_path, trained) -> None:
    model, x, y = trained
    rows = export_model(model, x[:50], y[:50], tmp_path, "torchscript")
    assert [r.variant for r in rows] == ["float32"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_cli_export_of_a_run_directory_writes_the_table_and_json(tmp_path, capsys, trained) -> None:
    from fedrobust.scenario import scenario_to_yaml

    model, _, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    torch.save(model.state_dict(), run / "model.pt")
    doc = {"scenario": SC.model_dump(mode="json"), "rounds": [], "status": "completed"}
    (run / "metrics.json").write_text(json.dumps(doc))
    (run / "scenario.yaml").write_text(scenario_to_yaml(SC))
    code, out, err = cli(capsys, "export", str(run), "--format", "onnx", "--quantize", "int8")
    assert code == 0, err
    assert "| int8 | onnx | model-int8.onnx |" in out
    saved = json.loads((run / "export" / "export.json").read_text())
    assert [f["variant"] for f in saved["files"]] == ["float32", "int8"]
    assert (run / "export" / "export.md").read_text() in out


def test_cli_export_refuses_bad_input_with_exit_2(tmp_path, capsys) -> None:
    code, _, err = cli(capsys, "export", str(tmp_path), "--format", "onnx")
    assert code == 2 and "not a run directory" in err
    code, _, err = cli(capsys, "export", str(tmp_path), "--format", "tflite")
    assert code == 2 and "invalid choice" in err
    code, _, err = cli(capsys, "export", str(tmp_path), "--format", "onnx", "--quantize", "int4")
    assert code == 2 and "invalid choice" in err
