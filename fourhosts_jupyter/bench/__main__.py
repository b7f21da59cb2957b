"""``python -m fourhosts_jupyter.bench AREA [options]``: run one benchmark area.

Each area is a module ``fourhosts_jupyter/bench/AREA.py`` with ``main(argv)``; it prints
figures and ratios against a baseline measured in the same process.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from . import __path__ as _bench_path


def areas() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(_bench_path) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m fourhosts_jupyter.bench AREA [options]\nareas: " + ", ".join(areas()))
        return 0 if argv else 2
    area, rest = argv[0], argv[1:]
    if area == "all":
        for name in areas():
            print(f"\n=== {name} ===", flush=True)
            importlib.import_module(f"{__package__}.{name}").main([])
        return 0
    if area not in areas():
        print(f"unknown area {area!r}: choose one of {', '.join(areas())}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"{__package__}.{area}").main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
