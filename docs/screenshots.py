"""Screenshots of a run's report.html, taken in headless Chromium, for the docs.

Usage (from the checkout root; any finished run directory works)::

    fedrobust run scenarios/quickstart.yaml --rounds 5 --out runs/shot
    python docs/screenshots.py runs/shot            # writes docs/img/report-*.png

Each shot opens a copy of the report that starts at one section (an ``<h2>`` of the
report; what comes before it is hidden) and lets Chromium's ``--screenshot`` take the
window.
The PNGs are then reduced to a 256-colour palette with Pillow (installed with
matplotlib, the ``report`` extra) so that each stays small enough to commit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: (file name, the report section the shot starts at: its ``<h2>`` text, or None for the
#: top of the page; window height; the height kept, in pixels)
SHOTS: list[tuple[str, str | None, int, int]] = [
    ("report-summary", None, 900, 815),
    ("report-clients", "Clients: label distribution", 1010, 1010),
    ("report-rounds", "Per-class recall", 720, 590),
]
WIDTH = 1200
MAX_BYTES = 300_000
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Hides everything before the section whose <h2> starts with the title (its earlier
# siblings, and theirs up to <body>), so that section opens the window. (Scrolling does
# not work: headless Chromium's --screenshot captures from the top of the page.)
_FOCUS = """<script>
window.addEventListener("DOMContentLoaded", () => {
  const title = %s;
  const heading = [...document.querySelectorAll("h2")]
    .find((h) => h.textContent.trim().startsWith(title));
  if (!heading) return;
  let node = heading.closest("section") || heading;
  while (node && node !== document.body) {
    let before = node.previousElementSibling;
    while (before) { before.style.display = "none"; before = before.previousElementSibling; }
    node = node.parentElement;
  }
});
</script>"""


def find_browser(name: str | None = None) -> str:
    """The Chromium executable: ``name`` if given, else the first of :data:`BROWSERS` on
    ``PATH``.

    Raises
    ------
    SystemExit
        When none is found (install Debian's ``chromium`` package).
    """
    for candidate in [name] if name else BROWSERS:
        path = shutil.which(candidate) if candidate else None
        if path:
            return path
    raise SystemExit("no Chromium found: install it (apt-get install chromium) or pass --browser")


def page_for(report: Path, section: str | None, workdir: Path) -> Path:
    """A copy of ``report`` that opens at ``section`` (None: the top), with the run
    directory's absolute path written as given (``runs/shot``, not this machine's)."""
    html = report.read_text(encoding="utf-8")
    html = html.replace(str(report.parent.resolve()), str(report.parent))
    if section is not None:
        script = _FOCUS % json.dumps(section)
        html = (
            html.replace("</head>", script + "</head>", 1) if "</head>" in html else script + html
        )
    page = workdir / f"{report.stem}-{abs(hash(section))}.html"
    page.write_text(html, encoding="utf-8")
    return page


def screenshot(browser: str, page: Path, out: Path, width: int, height: int) -> None:
    """Chromium's headless ``--screenshot`` of ``page`` in a ``width`` x ``height``
    window."""
    command = [
        browser,
        "--headless",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
        "--virtual-time-budget=3000",
        f"--screenshot={out}",
        page.as_uri(),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with it
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    if not out.is_file():
        raise SystemExit(f"Chromium wrote no screenshot for {page}")


def shrink(path: Path, keep_height: int, max_bytes: int = MAX_BYTES) -> None:
    """Keep the top ``keep_height`` pixels of ``path`` and reduce it to a 256-colour
    palette PNG (halved while it stays above ``max_bytes``); left as it is without
    Pillow."""
    try:
        from PIL import Image
    except ImportError:
        print("Pillow missing: PNG left unreduced", file=sys.stderr)
        return
    image = Image.open(path).convert("RGB")
    image = image.crop((0, 0, image.width, min(keep_height, image.height)))
    while True:
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_bytes or image.width < 400:
            return
        image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    """Take every shot of :data:`SHOTS` of ``RUN_DIR/report.html`` into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory (has report.html)")
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="default docs/img")
    parser.add_argument("--browser", help="Chromium executable (default: found on PATH)")
    parser.add_argument("--width", type=int, default=WIDTH, help=f"window width (default {WIDTH})")
    args = parser.parse_args(argv)
    report = args.run_dir / "report.html"
    if not report.is_file():
        print(f"error: {report}: no such file (run a scenario first)", file=sys.stderr)
        return 2
    browser = find_browser(args.browser)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, section, height, keep in SHOTS:
            out = args.out / f"{name}.png"
            screenshot(browser, page_for(report, section, Path(tmp)), out, args.width, height)
            shrink(out, keep)
            print(f"{out}  {out.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
