"""The README fits on a screen and its relative links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 250

# [text](target) and ![alt](target), without the code blocks and spans that may show them
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _relative_links(text: str) -> list[str]:
    targets = _LINK.findall(_prose(text))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_readme_fits_the_limit():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"


def test_every_relative_link_in_the_readme_exists():
    links = _relative_links(README.read_text(encoding="utf-8"))
    assert links, "no relative link found: the pattern is broken"
    missing = [t for t in links if not (ROOT / t.split("#")[0]).exists()]
    assert missing == [], f"README.md links to missing files: {missing}"


def test_link_finder_sees_links_and_skips_urls_and_code():
    text = "[a](docs/x.md) ![b](img.png#y) [c](https://flower.ai) [d](#top) `[e](no.md)`"
    assert _relative_links(text) == ["docs/x.md", "img.png#y"]
