"""``python -m bench.profiled OUT.prof ARGS...``: ``unioncard ARGS`` with cProfile switched on by
SIGUSR1 and off (the profile written to OUT.prof) by SIGUSR2, so that a benchmark profiles its
measured window only (:class:`bench.deployed.Deployed` with ``profile=``)."""

from __future__ import annotations

import cProfile
import signal
import sys

from bot.cli import main


def run(out: str, args: list[str]) -> int:
    prof = cProfile.Profile()

    def start(*_: object) -> None:
        prof.enable()

    def stop(*_: object) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return main(args)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
