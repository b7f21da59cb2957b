"""Scheduling and budgets (the seed's SchedulingService, rebuilt): see scheduler.py, budget.py.

    from fourhosts_jupyter.schedule import Budget, Scheduler
    sched = Scheduler(concurrency=8, budget=Budget(tokens=50_000, scope="batch"))
    handle = sched.submit(coro_fn, arg, priority=1, host="bernard", tokens=1_800)
    result = await handle

Light to import: asyncio and the standard library only.
"""

from __future__ import annotations

from .budget import Budget, BudgetUsage, Reservation, run_budget
from .scheduler import (
    DEFAULT_CONCURRENCY,
    Scheduler,
    SchedulerStatus,
    TaskHandle,
    backoff_delay,
    current_task,
    is_retryable,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Budget",
    "BudgetUsage",
    "Reservation",
    "Scheduler",
    "SchedulerStatus",
    "TaskHandle",
    "backoff_delay",
    "current_task",
    "is_retryable",
    "run_budget",
]
