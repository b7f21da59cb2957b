"""Module-level convenience: ``fh.research("…")`` with the default engine."""

from __future__ import annotations

from typing import Any

from .answer import Answer
from .config import Settings
from .engine import Engine


def _engine(store: str | None, **settings: Any) -> Engine:
    return Engine(Settings.from_env(store_path=store, **settings))


def research(question: str, *, store: str | None = None, **options: Any) -> Answer:
    """Research ``question`` and return the Answer (raises RunError if the run fails).
    ``budget_tokens=`` / ``budget_usd=`` limit the run: a model call that would pass them is
    refused before it is made (the run fails with kind ``budget``, keeping its partial answer)."""
    return _engine(store).research(question, **options)


async def aresearch(question: str, *, store: str | None = None, **options: Any) -> Answer:
    return await _engine(store).aresearch(question, **options)


def batch(questions: Any = None, *, column: str | None = None, store: str | None = None,
          **options: Any) -> Any:
    """Research many questions (a list, or a DataFrame and ``column=``); returns a DataFrame.
    Options as for a run plus ``concurrency``, ``budget_tokens``, ``budget_usd``, ``resume=``
    (a batch id) and ``retry_failed``; see ``fourhosts_jupyter.schedule.batch``. With a
    ``postgresql://`` store, ``workers=True`` queues the items for ``fourhosts worker``
    processes and follows them (``fourhosts_jupyter.schedule.submit``)."""
    from .schedule.batch import batch as run_batch

    return run_batch(questions, column=column, engine=_engine(store), **options)


async def abatch(questions: Any = None, *, column: str | None = None, store: str | None = None,
                 **options: Any) -> Any:
    from .schedule.batch import abatch as run_abatch

    return await run_abatch(questions, column=column, engine=_engine(store), **options)


def compare(question: str, hosts: Any = None, *, store: str | None = None, **options: Any) -> Any:
    """The hosts (all four, or e.g. ``"dolores,bernard"``) answer ``question`` at the same time;
    returns a ``Comparison`` (answers by host, ``.to_frame()``, ``.sources_matrix()``)."""
    from .comparison import compare as run

    return run(_engine(store), question, hosts, **options)


async def acompare(question: str, hosts: Any = None, *, store: str | None = None, **options: Any) -> Any:
    from .comparison import acompare as run

    return await run(_engine(store), question, hosts, **options)


def blend(question: str, mode: str | None = None, *, store: str | None = None, **options: Any) -> Any:
    """Blend the most likely hosts into one answer (``mode``: weighted, sequential,
    collaborative, or None to choose by the brief's pair rules); returns a ``BlendResult``."""
    from .blending import blend as run

    return run(_engine(store), question, mode=mode, **options)
def rate(run_id: str, rating: int, note: str = "", *, store: str | None = None) -> str:
    """Rate a past run 1–5 (with an optional note); returns its full id. Learning reads it."""
    from .learning import rate as rate_run
    from .memory.backends import open_store

    return rate_run(open_store(Settings.from_env(store_path=store).resolved_store_path()), run_id, rating, note)
