"""report.html renders in headless Chromium (slow; needs Debian's `chromium`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fedrobust.report.html import write_report
from fedrobust.report.metrics import RunRecorder

pytestmark = pytest.mark.slow


def _fake_run(run_dir: Path) -> None:
    """A small but complete metrics.json, built through the real recorder."""
    recorder = RunRecorder(run_dir, {"name": "render", "seed": 0})
    recorder.set_data(
        {
            "num_classes": 3,
            "noise_rate": 0.1,
            "clients": [
                {
                    "client": i,
                    "train": 30,
                    "val": 5,
                    "label_histogram": [10, 10 + i, 10 - i],
                    "noise_rate": 0.1,
                }
                for i in range(3)
            ],
        }
    )
    recorder.initial({"round": 0, "accuracy": 0.3, "loss": 1.1})
    for rnd in (1, 2, 3):
        recorder.add_round(
            {
                "round": rnd,
                "accuracy": 0.5 + 0.1 * rnd,
                "loss": 1.0 / rnd,
                "balanced_accuracy": 0.5,
                "per_class_recall": [0.5, 0.6, 0.4],
                "dropped": {},
                "seconds": 1.0,
                "clients": [
                    {
                        "client": i,
                        "num_examples": 30,
                        "train_loss": 1.0,
                        "val_accuracy": 0.5 + 0.1 * i,
                    }
                    for i in range(3)
                ],
            }
        )
    recorder.finish()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    _fake_run(tmp_path)
    page = write_report(tmp_path)
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 50_000  # plots drew, not a blank page
