"""A stopped batch, compare or run leaves nothing behind: when the stop returns, every task the
scheduler (and the engine's per-run scheduler) started has finished — none is left pending for
the end of the event loop, where the garbage collector would close it in another context
("Task was destroyed but it is pending", ``current_task.reset`` → ValueError)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from typing import Any, Iterator

import pytest
from openai_server import Reply

from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.schedule import Scheduler
from fourhosts_jupyter.schedule.batch import abatch
from test_batch import engine_for, interrupt_batch, questions


@contextlib.contextmanager
def unraisables() -> Iterator[list[str]]:
    """Every exception Python could not raise (a coroutine closed by the collector, a pending
    task destroyed), collected after a full garbage collection."""
    seen: list[str] = []
    before = sys.unraisablehook

    def hook(u: Any) -> None:
        seen.append(f"{u.err_msg or 'Exception ignored in'}: {u.object!r}: {u.exc_type.__name__}: {u.exc_value}")

    sys.unraisablehook = hook
    try:
        yield seen
        gc.collect()
    finally:
        sys.unraisablehook = before


def leftover() -> list[str]:
    """The tasks of this loop other than the current one (what a stop left behind)."""
    me = asyncio.current_task()
    return sorted(t.get_name() for t in asyncio.all_tasks() if t is not me and not t.done())


# -- the scheduler -----------------------------------------------------------------------------


def test_a_task_cancelled_before_its_first_step_settles_its_handle():
    # cancel() right after submit: the task exists but its coroutine never began, so its own
    # except/finally never run; the handle must still end cancelled and free its slot
    async def main() -> None:
        sched = Scheduler(1)
        started: list[int] = []

        async def work(i: int) -> int:
            started.append(i)
            return i

        first = sched.submit(work, 1)
        second = sched.submit(work, 2)
        assert first.status == "running" and second.status == "pending"
        assert first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(first._future), 5)
        assert first.status == "cancelled"
        assert await asyncio.wait_for(second, 5) == 2  # the freed slot went to the next one
        assert started == [2] and sched.status().running == 0

    asyncio.run(main())


def test_aclose_cancels_and_awaits_running_retrying_and_pending_tasks():
    from fourhosts_jupyter.errors import Cancelled, ProviderTimeout

    async def main() -> None:
        sched = Scheduler(2, retries=3, backoff=60.0, backoff_cap=60.0)
        gate = asyncio.Event()
        ended: list[str] = []

        async def slow(name: str) -> None:
            try:
                await gate.wait()
            finally:
                ended.append(name)

        async def flaky() -> None:
            raise ProviderTimeout("timed out")

        running = sched.submit(slow, "a", name="a")
        retrying = sched.submit(flaky, name="flaky")
        for _ in range(5):
            await asyncio.sleep(0)
        second = sched.submit(slow, "b", name="b")  # the slot the retrying one gave back
        pending = sched.submit(slow, "never", name="pending")
        await asyncio.sleep(0)
        statuses = (running.status, second.status, retrying.status, pending.status)
        assert statuses == ("running", "running", "retrying", "pending")
        await sched.aclose()
        assert leftover() == []
        assert {h.status for h in (running, second, retrying, pending)} == {"cancelled"}
        assert sorted(ended) == ["a", "b"]  # the pending one never started
        with pytest.raises(Cancelled, match="closed"):
            sched.submit(slow, "late")

    with unraisables() as seen:
        asyncio.run(main())
    assert seen == []


# -- a batch -----------------------------------------------------------------------------------


def test_a_cancelled_batch_leaves_no_task_running(openai_server, seeded_store):
    # the interrupt of test_batch's cancelled batch (Ctrl-C cancels the batch's task): when the
    # cancelled batch returns, its runs are stopped, not still running for the loop's end
    openai_server.set_default(Reply.say("Lower speeds save lives [1].", usage=(1_000, 50), first_delay=0.3))
    engine = engine_for(openai_server, seeded_store)
    left: list[list[str]] = []

    async def main() -> None:
        await interrupt_batch(openai_server, engine, 2)
        left.append(leftover())

    with unraisables() as seen:
        for _ in range(3):
            openai_server.clear()
            asyncio.run(main())
    assert left == [[]] * 3
    assert seen == []


def test_a_budget_stopped_compare_batch_leaves_no_task_running(openai_server, seeded_store):
    # test_batch_compare's stop: the budget runs out part-way through a compare batch
    openai_server.set_default(Reply.say("Lower speeds save lives [1].", usage=(1_000, 50)))
    engine = engine_for(openai_server, seeded_store)
    left: list[list[str]] = []
    states: list[str] = []

    async def main() -> None:
        df = await abatch(questions(2), engine=engine, concurrency=1, budget_tokens=5_000,
                          progress=False, compare=True)
        states.append(df.attrs["state"])
        left.append(leftover())

    with unraisables() as seen:
        for _ in range(3):
            asyncio.run(main())
    assert states == ["stopped"] * 3 and left == [[]] * 3
    assert seen == []


# -- a run and a compare -----------------------------------------------------------------------


def _slow_answer(server: Any) -> None:
    server.set_default(Reply.say("Lower speeds save lives [1]. " * 40, usage=(1_000, 50), delay=0.02))


def _run(engine: Engine, q: str) -> Any:
    return engine.astream(q)


def _compare(engine: Engine, q: str) -> Any:
    from fourhosts_jupyter.comparison import astream_compare

    return astream_compare(engine, q, "dolores,bernard")


def _blend(engine: Engine, q: str) -> Any:
    from fourhosts_jupyter.blending import astream_blend

    return astream_blend(engine, q, mode="weighted")


@pytest.mark.parametrize("start", [_run, _compare, _blend], ids=["run", "compare", "blend"])
def test_a_stream_stopped_mid_answer_leaves_no_task_running(openai_server, seeded_store, start):
    # interrupting a cell mid-stream closes its event stream while the answer (or, for a
    # compare or blend, a host's answer) streams
    _slow_answer(openai_server)
    engine: Engine = engine_for(openai_server, seeded_store)
    left: list[list[str]] = []

    async def main() -> None:
        events = start(engine, "How should a city cut traffic deaths?")
        async for ev in events:
            if type(getattr(ev, "event", ev)).__name__ == "TextDelta":
                break
        await events.aclose()
        left.append(leftover())

    with unraisables() as seen:
        for _ in range(2):
            asyncio.run(main())
    assert left == [[]] * 2
    assert seen == []


def test_a_cell_stopped_mid_stream_leaves_no_thread_and_nothing_unraisable(openai_server, seeded_store):
    # the %%research cell's path: Engine.stream on its worker thread, closed when the cell stops
    import threading

    _slow_answer(openai_server)
    engine: Engine = engine_for(openai_server, seeded_store)
    with unraisables() as seen:
        for _ in range(2):
            events = engine.stream("How should a city cut traffic deaths?")
            for ev in events:
                if type(ev).__name__ == "TextDelta":
                    break
            events.close()
            assert [t.name for t in threading.enumerate() if t.name == "fourhosts-run"] == []
    assert seen == []
    runs = seeded_store.runs(limit=5)  # the stopped runs are kept, as cancelled ones
    assert list(runs["status"]) == ["failed"] * 2 and list(runs["error"]) == ["the run was cancelled"] * 2
