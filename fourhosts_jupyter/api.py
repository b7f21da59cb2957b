"""Module-level convenience: ``fh.research("…")`` with the default engine."""

from __future__ import annotations

from typing import Any

from .answer import Answer
from .config import Settings
from .engine import Engine


def _engine(store: str | None, **settings: Any) -> Engine:
    return Engine(Settings.from_env(store_path=store, **settings))


def research(question: str, *, store: str | None = None, **options: Any) -> Answer:
    """Research ``question`` and return the Answer (raises RunError if the run fails)."""
    return _engine(store).research(question, **options)


async def aresearch(question: str, *, store: str | None = None, **options: Any) -> Answer:
    return await _engine(store).aresearch(question, **options)


def rate(run_id: str, rating: int, note: str = "", *, store: str | None = None) -> str:
    """Rate a past run 1–5 (with an optional note); returns its full id. Learning reads it."""
    from .learning import rate as rate_run
    from .memory.store import Store

    return rate_run(Store(Settings.from_env(store_path=store).resolved_store_path()), run_id, rating, note)
