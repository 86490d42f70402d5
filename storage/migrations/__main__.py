"""``python -m storage.migrations regenerate | revision "message" [URL] | head``."""

from __future__ import annotations

import sys

from storage.migrations import head_revision, new_revision, regenerate_initial


def main(argv: list[str]) -> int:
    if argv[:1] == ["regenerate"]:
        print(f"wrote {regenerate_initial()}")
        return 0
    if argv[:1] == ["revision"] and len(argv) >= 2:
        url = argv[2] if len(argv) > 2 else "sqlite+aiosqlite:///./var/unioncard.db"
        new_revision(url, argv[1])
        return 0
    if argv[:1] == ["head"]:
        print(head_revision())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
