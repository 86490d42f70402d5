"""Benchmarks (``python -m bench``). They make their data with the tests' ``factories`` module:
``tests/`` is a plain folder on pytest's path, not a package, so it is put on ``sys.path`` here
(once, for every benchmark and the processes they spawn)."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
