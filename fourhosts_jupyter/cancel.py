"""Stopping work that runs on a thread: a stage that overran its time limit must stop its
work, not just stop waiting for it (a thread cannot be killed, and a process does not exit
while an executor thread still works).

The engine opens a ``cancel_scope`` around a stage and sets it when the stage is stopped;
``asyncio.to_thread`` copies the context, so the work sees the scope without an argument
threaded through every call. Long loops call ``check_cancelled()`` between committed batches,
so what is stopped keeps every finished batch and the next run resumes from there.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Iterator

from .errors import Cancelled

_scope: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "fourhosts_cancel_scope", default=None
)


@contextlib.contextmanager
def cancel_scope() -> Iterator[threading.Event]:
    """An event that, once set, makes ``check_cancelled()`` raise in work started inside."""
    stop = threading.Event()
    token = _scope.set(stop)
    try:
        yield stop
    finally:
        _scope.reset(token)


def check_cancelled() -> None:
    """Raise Cancelled if the surrounding scope was stopped (a no-op outside any scope)."""
    stop = _scope.get()
    if stop is not None and stop.is_set():
        raise Cancelled("the work was stopped (its stage ran past its time limit or was cancelled)")
