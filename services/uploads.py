"""Read an untrusted uploaded spreadsheet safely (DESIGN.md, "Uploads").

The layers, cheapest first:

1. In the caller's process (a worker thread): the size (``limits.upload_bytes``), the magic bytes
   (xlsx = zip ``PK\\x03\\x04``; xls = OLE ``D0CF11E0``; csv = text) and, for an OLE container,
   the ``EncryptionInfo`` stream that marks a password-protected workbook.
2. In a child process with ``RLIMIT_AS`` (``limits.parse_memory_mb``), ``RLIMIT_CPU``
   (``limits.parse_cpu_seconds``), no core dumps, and a wall-clock timeout after which it is
   killed: the zip's entry count, per-entry compression ratio and total uncompressed size
   (the declared sizes, and the parts other than worksheets counted while decompressing), any
   ``<!DOCTYPE`` / ``<!ENTITY`` in an XML part (entity expansion), the declared sheet dimension
   (calamine allocates rows x columns cells); then calamine (xlsx/xls) or the csv module reads
   the rows. Whatever slips through (a far cell reference without a dimension) meets the memory
   limit: calamine aborts, the child dies, the caller gets ``parse.memory``.

A child comes from a ``forkserver`` that has already imported this module and calamine, so a
parse costs a fork (about 10 ms), not a Python start-up (``warm_up()`` starts the server ahead of
time; see :func:`_fork_server_hook` for why the children skip the parent's ``__main__``). The
child runs without garbage collection and sends the columns back as a few joined strings; at
most :data:`PARALLEL_PARSES` children run at once per process. The child's stderr goes to
/dev/null (calamine prints its allocation failures there).

The result keeps each cell as text plus a one-letter raw type (``s`` text, ``n`` number, ``b``
bool, ``d`` date/time, ``e`` empty), so a caller can tell an ID number typed as a number (digits
lost) from one typed as text. Row numbers are Excel's (1-based, as the user sees them).

Every problem is an :class:`UploadRejected` with a stable ``code``; the Chinese wording lives in
the dialog texts.

The modules: :mod:`services.upload_sheet` (Sheet, Column, UploadRejected, the fixed limits),
:mod:`services.upload_checks` (size, magic bytes, zip and markup checks),
:mod:`services.upload_read` (the child: calamine or csv, header, packing), and this one (the fork
server, the limited child and its slots; the public names are re-exported here).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import sys
import threading
import time
from typing import Any

from services.upload_checks import check_zip, sniff
from services.upload_read import _child_main, _unpack, read_csv, read_workbook
from services.upload_sheet import MAX_CELL_CHARS, Column, Sheet, UploadRejected
from storage.settings import LimitSettings

__all__ = [
    "MAX_CELL_CHARS",
    "PARALLEL_PARSES",
    "Column",
    "Sheet",
    "UploadRejected",
    "check_zip",
    "parse_file",
    "parse_upload",
    "read_csv",
    "read_workbook",
    "sha256_of",
    "sniff",
    "warm_up",
]

# --- the process that runs the child -------------------------------------------------------

_ctx: Any = None
PARALLEL_PARSES = 2
_SLOTS = threading.BoundedSemaphore(PARALLEL_PARSES)


def _context() -> Any:
    global _ctx
    if _ctx is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["services.uploads", "python_calamine"])
        _ctx = ctx
    return _ctx


def _fork_server_hook() -> None:
    """When the fork server imports this module (a preload), stop its children re-running the
    parent's ``__main__``: they start from :func:`_child_main` and need nothing from it.

    CPython's fork server means to import ``__main__`` once itself, but it looks for the key
    ``main_path`` where the preparation data says ``init_main_from_path``, so every child would
    re-run the main script: for the bot that is 0.7 s of imports per upload instead of 10 ms.
    Nothing changes anywhere else: the hook only acts inside ``multiprocessing.forkserver.main``.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.endswith("forkserver.py"):
            break
        frame = frame.f_back
    else:
        return
    from multiprocessing import spawn

    original = spawn.prepare
    skip = ("init_main_from_path", "init_main_from_name")

    def prepare(data: dict[str, Any]) -> None:
        original({k: v for k, v in data.items() if k not in skip})

    spawn.prepare = prepare


_fork_server_hook()


def warm_up() -> None:
    """Start the fork server now (it imports calamine once); later parses only fork."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def parse_file(
    path: str,
    limits: LimitSettings,
    columns: tuple[Column, ...],
    file_name: str = "",
) -> Sheet:
    """Blocking: check and read ``path`` in a limited child. Run it in a thread.

    At most :data:`PARALLEL_PARSES` children run at once per process (each may use up to
    ``parse_memory_mb``); further callers wait for a slot.
    """
    kind = sniff(path, limits, file_name)
    with _SLOTS:
        return _parse_in_child(path, kind, limits, columns)


def _parse_in_child(
    path: str, kind: str, limits: LimitSettings, columns: tuple[Column, ...]
) -> Sheet:
    ctx = _context()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    opts = {
        "memory_mb": limits.parse_memory_mb,
        "cpu_seconds": limits.parse_cpu_seconds,
        "max_rows": limits.upload_rows,
    }
    proc = ctx.Process(
        target=_child_main, args=(child_conn, path, kind, columns, opts), daemon=True
    )
    proc.start()
    child_conn.close()
    deadline = time.monotonic() + limits.parse_timeout_seconds
    try:
        result: Any = None
        while result is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UploadRejected("parse.timeout", f"{limits.parse_timeout_seconds}s")
            if parent_conn.poll(min(remaining, 0.5)):
                try:
                    result = parent_conn.recv()
                except EOFError:
                    result = ("died",)
            elif not proc.is_alive() and not parent_conn.poll(0):
                result = ("died",)
        if result[0] == "ok":
            return _unpack(result[1])
        if result[0] == "err":
            raise UploadRejected(result[1], result[2])
        proc.join(1)
        raise UploadRejected(*_death_code(proc.exitcode))
    finally:
        parent_conn.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)


def _death_code(exitcode: int | None) -> tuple[str, str]:
    if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
        return ("parse.cpu", f"exit {exitcode}")
    # Rust aborts when an allocation fails (RLIMIT_AS): SIGABRT; Python may segfault.
    return ("parse.memory", f"exit {exitcode}")


async def parse_upload(
    path: str,
    limits: LimitSettings,
    columns: tuple[Column, ...],
    file_name: str = "",
) -> Sheet:
    """Check and read an upload without blocking the event loop."""
    return await asyncio.to_thread(parse_file, path, limits, columns, file_name)


def sha256_of(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
