"""``fedrobust export``: a run's model for devices, with its size and accuracy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedrobust.commands.common import load_model_for, require_run_dir
from fedrobust.extras import require
from fedrobust.rundir import EXPORT_DOC, EXPORT_TABLE, RunDir


def cmd_export(args: argparse.Namespace) -> int:
    """Export a finished run's model (TorchScript or ONNX, int8 optional) and tabulate it."""
    from fedrobust.deploy.export import export_model, export_table

    run_dir: Path = args.run_dir
    require_run_dir(run_dir)
    if args.format == "onnx":
        require("--format onnx", "onnx", "onnxscript", "onnxruntime")
    scenario, fed, model = load_model_for(run_dir, None)
    out = args.out or RunDir(run_dir).export
    rows = export_model(model, fed.x_test, fed.y_test, out, args.format, args.quantize)
    doc = {"run": str(run_dir.resolve()), "test_examples": len(fed.y_test)}
    doc["files"] = [row.to_dict() for row in rows]
    (out / EXPORT_DOC).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    (out / EXPORT_TABLE).write_text(export_table(rows), encoding="utf-8")
    print(f"{scenario.name}: {args.format} export, measured on {len(fed.y_test)} test examples")
    print(export_table(rows), end="")
    print(f"files and table: {out}")
    return 0
