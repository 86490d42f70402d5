"""Auto-pipelining of Redis script calls: many turns' calls, one round trip.

Every callback makes a few script calls (claim the delivery, lock and load the cursor, save and
unlock, record the reply); made one by one, each costs a connection check-out, a write and a
read. :func:`script_batch` gives each client one :class:`ScriptBatch`: a call waits in a queue;
when no pipeline of the client is in flight, everything queued goes as one pipeline, and what
is asked while it is in flight goes in the next. A lone call goes alone. A script Redis does
not know yet (after a restart or ``SCRIPT FLUSH``) is loaded and the call retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

_Call = tuple[AsyncScript, list[Any], list[Any], "asyncio.Future[Any]", Callable[[Any], Any] | None]


class ScriptBatch:
    """Script calls on one client, pipelined (see the module doc)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.pending: list[_Call] = []
        self.busy = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def call(
        self,
        script: AsyncScript,
        keys: list[Any],
        args: list[Any],
        convert: Callable[[Any], Any] | None = None,
    ) -> asyncio.Future[Any]:
        """``script(keys, args)``'s result, through ``convert`` if given (a future: await it)."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new event loop (tests): nothing of the old one is awaited
            self.loop, self.pending, self.busy = loop, [], False
        fut: asyncio.Future[Any] = loop.create_future()
        self.pending.append((script, keys, args, fut, convert))
        if not self.busy:
            self.busy = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            self.busy = False
            return
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self.tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._flush()  # what was asked meanwhile

    async def _send(self, batch: list[_Call]) -> None:
        try:
            if len(batch) == 1:
                script, k, a, *_ = batch[0]
                try:
                    results: list[Any] = [await script(keys=k, args=a)]
                except NoScriptError as exc:  # loaded by the retry below
                    results = [exc]
            else:
                pipe = self.redis.pipeline(transaction=False)
                for script, k, a, *_ in batch:
                    pipe.execute_command("EVALSHA", script.sha, len(k), *k, *a)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for *_, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (script, k, a, fut, convert), res in zip(batch, results, strict=True):
            if isinstance(res, NoScriptError):
                try:
                    res = await script(keys=k, args=a)  # loads the script, then runs it
                except Exception as exc:
                    res = exc
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res if convert is None else convert(res))


def script_batch(redis: Any) -> ScriptBatch:
    """The client's :class:`ScriptBatch` (one per client object)."""
    batch = redis.__dict__.get("_uc_script_batch")
    if batch is None:
        batch = redis.__dict__["_uc_script_batch"] = ScriptBatch(redis)
    return batch
