"""Run a benchmark: ``python -m bench NAME [ARGS...]``; ``python -m bench`` lists them.

A benchmark is a module ``bench/<name>.py`` exposing ``main(argv: list[str]) -> None`` that
prints its figures and :func:`bench.common.machine_info`. The first line of its docstring is
its description in the list.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

_SKIP = {"common", "__main__"}


def available() -> dict[str, str]:
    """Benchmark names and their one-line descriptions."""
    here = Path(__file__).parent
    found: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"bench.{info.name}")
        except Exception as exc:  # a broken benchmark must not hide the others
            found[info.name] = f"(cannot import: {exc})"
            continue
        if not callable(getattr(mod, "main", None)):
            continue
        doc = (mod.__doc__ or "").strip().splitlines()
        found[info.name] = doc[0] if doc else ""
    return found


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    benches = available()
    if not argv or argv[0] in ("-h", "--help", "list"):
        print("usage: python -m bench NAME [ARGS...]   (NAME --help for its options)\n")
        print("benchmarks:")
        for name, doc in benches.items():
            print(f"  {name:<24} {doc}")
        return 0
    name = argv[0].replace("-", "_")
    if name not in benches:
        print(f"unknown benchmark {argv[0]!r}; available: {', '.join(benches)}", file=sys.stderr)
        return 2
    importlib.import_module(f"bench.{name}").main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
