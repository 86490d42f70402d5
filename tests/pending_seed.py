"""The 待审核 tests' data: shared with ``python -m bench bulk`` (``bench/pending_seed.py``)."""

from bench.pending_seed import Seeded, level_of, review, seed_pending, unit_name

__all__ = ["Seeded", "level_of", "review", "seed_pending", "unit_name"]
