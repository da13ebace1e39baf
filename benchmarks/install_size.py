"""The disk size of a fedrobust install: a whole venv, its biggest packages first.

    python benchmarks/install_size.py VENV [--limit-gb 1.2]

Prints the venv's total (interpreter links, ``bin/`` with its executables, every file of
site-packages, bytecode included) and the ten largest entries of its site-packages as a
markdown table; exits 1 when the total passes ``--limit-gb`` (the edge target of issue
#26: a base install, torch included, at most 1.2 GB). ``.ci/wheel`` runs it on a fresh
venv holding the wheel without extras (installed with ``--no-compile``), after its
SuperNodes trained, so the bytecode Python wrote for the modules a device imports counts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

GB = 1e9


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (symlinks not followed), or of the file itself."""
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"error: {venv}: no lib/python3*/site-packages (not a venv?)")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("--limit-gb", type=float, help="fail above this many GB")
    args = parser.parse_args(argv)
    site = site_packages(args.venv)
    sizes = {entry.name: tree_bytes(entry) for entry in site.iterdir()}
    sizes["(bin/)"] = tree_bytes(args.venv / "bin")
    total = tree_bytes(args.venv)
    bytecode = sum(tree_bytes(p) for p in args.venv.rglob("__pycache__"))
    print(f"| {args.venv} | GB |\n| --- | ---: |")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:10]:
        print(f"| {name} | {size / GB:.3f} |")
    print(f"| (bytecode, all \\_\\_pycache\\_\\_) | {bytecode / GB:.3f} |")
    print(f"| **total** | **{total / GB:.3f}** |")
    if args.limit_gb is not None and total > args.limit_gb * GB:
        print(f"over the limit of {args.limit_gb} GB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
