"""HTTP clients belong to the event loop they were made on: closed on it, before it ends.

The sync twins run each run (a comparison, a compression) on an event loop of their own, which
closes after it. A provider makes one client per loop and a run's model loop closes it, but a
run goes on after that (the evaluation's judge, a healing round) and makes another. A client
still open when its loop closes is collected later, and its pooled sockets then call into the
closed loop: ``RuntimeError: Event loop is closed`` tracebacks at exit (``bench compare``).
Providers ``track`` every client they make; whoever owns a loop awaits ``close_all()`` last
thing on it, or runs the coroutine through ``run``."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any, Awaitable, TypeVar

T = TypeVar("T")

_OPEN: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()


def track(client: T) -> T:
    """Remember ``client`` (it has an async ``close()``) as made on the running loop."""
    _OPEN.setdefault(asyncio.get_running_loop(), weakref.WeakSet()).add(client)
    return client


def open_on_this_loop() -> int:
    """How many tracked clients the running loop still holds (for tests)."""
    return len(_OPEN.get(asyncio.get_running_loop(), ()))


async def close_all() -> None:
    """Close every client made on the running loop (closing a closed one is harmless)."""
    for client in list(_OPEN.pop(asyncio.get_running_loop(), ())):
        with contextlib.suppress(Exception):  # a client that cannot close cleanly is still let go
            await client.close()


def run(coro: Awaitable[T]) -> T:
    """``asyncio.run(coro)``, closing the clients made on its loop before the loop ends."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await close_all()

    return asyncio.run(main())
