"""The tool runner: timeouts × host multiplier, circuit breakers, retries, fallbacks, gating.

Every failure must come back as a structured error and a ToolCallFailed event, never raise.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator

import pytest

from fourhosts_jupyter.errors import ToolError
from fourhosts_jupyter.events import (
    ToolCallArgumentsDelta,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
)
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.paradigms import PROFILES, HostParadigm
from fourhosts_jupyter.tools import ParadigmAwareToolContext, ToolHistory, ToolRegistry
from fourhosts_jupyter.tools.builtins import register_builtins
from fourhosts_jupyter.tools.runner import CircuitBreaker, ToolPool, ToolRunner, bounded_content


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_sleep(_: float) -> None:
    return None


def run(runner: ToolRunner, name: str, args: str | dict = "{}", ctx: ParadigmAwareToolContext | None = None,
        call_id: str = "c1"):
    events: list = []
    raw = args if isinstance(args, str) else json.dumps(args)
    ctx = ctx or ParadigmAwareToolContext(paradigm=runner.host, run_id="r1", question="how to cut traffic deaths")
    outcome = asyncio.run(runner.run(call_id, name, raw, ctx, events.append))
    return outcome, events


def make(host: HostParadigm | None = HostParadigm.MAEVE, **kw) -> tuple[ToolRegistry, Callable[[], ToolRunner]]:
    reg = ToolRegistry()
    kw.setdefault("sleep", _no_sleep)
    kw.setdefault("history", ToolHistory())
    return reg, lambda: ToolRunner(reg, host=host, **kw)


def assert_structured_error(content: str, kind: str, retryable: bool = False) -> dict:
    payload = json.loads(content)
    assert payload["success"] is False and payload["kind"] == kind and payload["retryable"] is retryable
    assert payload["error"]
    return payload


def test_success_emits_running_then_finished_with_preview():
    reg, new = make()

    @reg.register
    def add(a: int, b: int = 1) -> int:
        """Add."""
        return a + b

    outcome, events = run(new(), "add", {"a": 2, "b": "3"})
    assert outcome.ok and outcome.content == "5" and outcome.status == "done"
    assert [type(e) for e in events] == [ToolCallRunning, ToolCallFinished]
    assert events[0].arguments == {"a": 2, "b": "3"}
    assert events[1].result == 5 and events[1].preview == "5" and events[1].seconds >= 0


@pytest.mark.parametrize(
    ("name", "raw", "kind"),
    [
        ("nothing_here", "{}", "unknown_tool"),
        ("add", '{"a": 1,', "bad_arguments"),
        ("add", "[1, 2]", "bad_arguments"),
        ("add", '{"b": 2}', "bad_arguments"),
        ("boom", "{}", "tool_error"),
    ],
)
def test_every_failure_is_a_structured_error_and_an_event(name, raw, kind):
    reg, new = make(host=None)

    @reg.register
    def add(a: int, b: int = 1) -> int:
        return a + b

    @reg.register
    def boom() -> None:
        raise KeyError("the tool's own bug")

    outcome, events = run(new(), name, raw)
    assert not outcome.ok and outcome.status == kind
    payload = assert_structured_error(outcome.content, kind)
    failed = [e for e in events if isinstance(e, ToolCallFailed)]
    assert len(failed) == 1 and failed[0].kind == kind and failed[0].error == payload["error"]
    if kind == "tool_error":
        assert "KeyError" in payload["error"]


def test_unknown_tool_falls_back_to_the_hosts_fallback_tool(store):
    reg, new = make(host=HostParadigm.TEDDY)
    register_builtins(reg)
    assert PROFILES[HostParadigm.TEDDY].fallback_tool == "search_memory"
    ctx = ParadigmAwareToolContext(paradigm=HostParadigm.TEDDY, store=store, embedder=HashingEmbedder(),
                                   run_id="r1", question="traffic deaths")
    outcome, events = run(new(), "advanced_web_search", {"query": "speed cameras"}, ctx)
    payload = assert_structured_error(outcome.content, "unknown_tool")
    assert payload["fallback"]["tool"] == "search_memory" and payload["fallback"]["success"] is True
    assert "the host's fallback tool search_memory runs instead" in payload["error"]
    # the fallback is its own card, with the query carried over
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [e.call_id for e in started] == ["c1-fallback"] and started[0].name == "search_memory"
    args = next(e for e in events if isinstance(e, ToolCallArgumentsDelta))
    assert json.loads(args.delta) == {"query": "speed cameras"}
    assert [type(e) for e in events][-1] is ToolCallFinished


def test_tools_not_offered_to_this_host_count_as_unknown():
    reg, _ = make()

    @reg.register
    def secret() -> str:
        return "x"

    runner = ToolRunner(reg, host=HostParadigm.DOLORES, offered=set(), history=ToolHistory())
    outcome, _ = run(runner, "secret")
    assert outcome.status == "unknown_tool"


def test_timeout_is_per_tool_times_the_host_multiplier():
    reg, _ = make()

    @reg.register(timeout=0.5)
    async def slowish() -> str:
        await asyncio.sleep(0.6)
        return "done"

    @reg.register
    def default_timeout() -> None:
        return None

    for host, multiplier in [(HostParadigm.DOLORES, 0.8), (HostParadigm.TEDDY, 1.2),
                             (HostParadigm.BERNARD, 1.5), (HostParadigm.MAEVE, 1.0)]:
        runner = ToolRunner(reg, host=host, history=ToolHistory(), retries=0)
        assert runner.timeout_for(reg.get("slowish")) == pytest.approx(0.5 * multiplier)
        assert runner.timeout_for(reg.get("default_timeout")) == pytest.approx(30 * multiplier)
    # 0.6 s of work: too slow for Dolores (0.4 s), fine for Bernard (0.75 s)
    outcome, events = run(ToolRunner(reg, host=HostParadigm.DOLORES, history=ToolHistory(), retries=0), "slowish")
    payload = assert_structured_error(outcome.content, "timeout", retryable=True)
    assert "0.4 s" in payload["error"] and "multiplier 0.8" in payload["error"]
    outcome, _ = run(ToolRunner(reg, host=HostParadigm.BERNARD, history=ToolHistory(), retries=0), "slowish")
    assert outcome.ok and outcome.content == "done"


def test_retries_only_retryable_errors():
    reg, new = make()
    calls = {"flaky": 0, "broken": 0}

    @reg.register
    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise ConnectionError("network unreachable")
        return "ok"

    @reg.register
    def broken() -> str:
        calls["broken"] += 1
        raise ValueError("bad input")

    outcome, events = run(new(), "flaky")
    assert outcome.ok and calls["flaky"] == 2
    assert not any(isinstance(e, ToolCallFailed) for e in events)
    outcome, _ = run(new(), "broken")
    assert not outcome.ok and calls["broken"] == 1


def test_circuit_opens_after_three_failures_then_half_opens_after_60_s():
    clock = Clock()
    reg, new = make(host=None)
    reg.breakers.clock = clock
    reg.breakers.reset()
    state = {"calls": 0, "fail": True}

    @reg.register(retries=0)
    def fragile() -> str:
        state["calls"] += 1
        if state["fail"]:
            raise ToolError("upstream is down")
        return "recovered"

    for _ in range(3):
        outcome, _ = run(new(), "fragile")
        assert outcome.status == "tool_error"
    outcome, events = run(new(), "fragile")
    payload = assert_structured_error(outcome.content, "circuit_open")
    assert "paused for 60 s" in payload["error"]
    assert state["calls"] == 3  # the open circuit did not call the tool
    assert events[0].kind == "circuit_open"

    clock.now += 60  # half-open: one trial call goes through
    state["fail"] = False
    outcome, _ = run(new(), "fragile")
    assert outcome.ok and state["calls"] == 4
    assert reg.breakers["fragile"].state == "closed"


def test_a_failed_trial_reopens_the_circuit():
    clock = Clock()
    b = CircuitBreaker(clock=clock)
    for _ in range(3):
        assert b.allow()
        b.failure()
    assert b.state == "open" and not b.allow()
    clock.now += 61
    assert b.allow() and not b.allow()  # one trial at a time
    b.failure()
    assert b.state == "open"
    b.success()
    assert b.state == "closed" and b.failures == 0


def test_open_circuit_uses_the_fallback_tool(store):
    reg, new = make(host=HostParadigm.BERNARD)
    register_builtins(reg)

    @reg.register(retries=0)
    def local_content_search(query: str) -> str:
        raise ToolError("index offline")

    ctx = ParadigmAwareToolContext(paradigm=HostParadigm.BERNARD, store=store, embedder=HashingEmbedder())
    for _ in range(3):
        run(new(), "local_content_search", {"query": "q"}, ctx)
    outcome, events = run(new(), "local_content_search", {"query": "road safety"}, ctx)
    payload = assert_structured_error(outcome.content, "circuit_open")
    assert payload["fallback"]["tool"] == "search_memory"
    assert any(isinstance(e, ToolCallStarted) and e.name == "search_memory" for e in events)


def test_large_results_are_gated_with_digest_pointer_and_preview():
    reg, new = make()
    big = [{"row": i, "text": "x" * 100} for i in range(200)]

    @reg.register
    def dump() -> list:
        return big

    ctx = ParadigmAwareToolContext(run_id="r_big")
    outcome, events = run(new(), "dump", ctx=ctx, call_id="call_9")
    gated = json.loads(outcome.content)
    assert len(outcome.content) < 2_000
    assert gated["truncated"] is True and gated["chars"] > 10_000
    assert gated["digest"].startswith("sha256:") and gated["pointer"] == "run:r_big/tool:call_9"
    assert len(gated["preview"]) == 200 and gated["summary"] == "list of 200 items (dict)"
    assert events[-1].result is big  # the full result goes to the run log


def test_repr_llm_decides_what_the_model_reads():
    class Chart:
        def _repr_llm_(self) -> str:
            return "a bar chart of deaths by year"

    assert bounded_content(Chart(), pointer="p") == "a bar chart of deaths by year"
    assert bounded_content({"a": 1}, pointer="p") == '{"a": 1}'


def test_sync_tools_run_in_a_thread_async_tools_are_awaited():
    reg, new = make()
    seen = {}

    @reg.register
    def sync_tool() -> str:
        seen["sync"] = threading.current_thread() is threading.main_thread()
        return "s"

    @reg.register
    async def async_tool() -> str:
        seen["async"] = threading.current_thread() is threading.main_thread()
        return "a"

    assert run(new(), "sync_tool")[0].ok and run(new(), "async_tool")[0].ok
    assert seen == {"sync": False, "async": True}


def test_context_is_injected_with_previous_results_and_history_is_kept_per_host():
    reg, _ = make()
    history = ToolHistory()
    seen = []

    @reg.register
    def first(x: int) -> int:
        return x * 10

    @reg.register
    def second(ctx: ParadigmAwareToolContext) -> int:
        seen.append(ctx)
        return ctx.result_of("first") + 1

    runner = ToolRunner(reg, host=HostParadigm.TEDDY, history=history)
    base = ParadigmAwareToolContext(paradigm=HostParadigm.TEDDY, probabilities={HostParadigm.TEDDY: 0.7},
                                    run_id="r7")

    async def go():
        a = await runner.run("c1", "first", '{"x": 4}', base, lambda e: None)
        b = await runner.run("c2", "second", "{}", base, lambda e: None, round=1)
        return a, b

    a, b = asyncio.run(go())
    assert a.content == "40" and b.content == "41"
    ctx = seen[0]
    assert ctx.paradigm is HostParadigm.TEDDY and ctx.call_id == "c2" and ctx.round == 1
    assert [r.name for r in ctx.previous] == ["first"] and ctx.previous[0].result == 40
    stats = history.stats(HostParadigm.TEDDY)
    assert stats["first"]["calls"] == 1 and stats["second"]["failures"] == 0
    assert history.stats(HostParadigm.DOLORES) == {}


# -- sync tools that hang: a dedicated pool, abandoned calls, fast failure ---------------------


class Hang:
    """Gates that hung tools block on and the pools they run on; the fixture sets every gate
    and joins every pool at teardown, so no tool thread outlives its test."""

    def __init__(self) -> None:
        self.gates: list[threading.Event] = []
        self.pools: list[ToolPool] = []

    def gate(self) -> threading.Event:
        self.gates.append(threading.Event())
        return self.gates[-1]

    def pool(self, size: int) -> ToolPool:
        self.pools.append(ToolPool(size))
        return self.pools[-1]


@pytest.fixture
def hang() -> Iterator[Hang]:
    h = Hang()
    yield h
    for gate in h.gates:
        gate.set()
    for pool in h.pools:
        pool.shutdown(wait=True)


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_hung_sync_tool_is_abandoned_the_run_goes_on_and_its_slot_frees_later(hang):
    reg, _ = make()
    pool, gate = hang.pool(2), hang.gate()
    history = ToolHistory()
    state = {"calls": 0, "side_effect": False}

    @reg.register(timeout=0.2)
    def stuck() -> str:
        state["calls"] += 1
        gate.wait(10)
        state["side_effect"] = True
        return "late"

    @reg.register
    def quick() -> str:
        return "fast"

    runner = ToolRunner(reg, host=HostParadigm.MAEVE, history=history, pool=pool, sleep=_no_sleep)

    t = time.perf_counter()
    outcome, events = run(runner, "stuck")
    elapsed = time.perf_counter() - t
    assert elapsed < 2  # the run did not wait for the thread
    payload = assert_structured_error(outcome.content, "timeout", retryable=False)
    for words in ("0.2 s", "the call was abandoned", "thread may still be running",
                  "late result will be discarded"):
        assert words in payload["error"]
    failed = [e for e in events if isinstance(e, ToolCallFailed)]
    assert len(failed) == 1 and failed[0].error == payload["error"] and failed[0].kind == "timeout"
    assert state["calls"] == 1  # not retried: a second copy would run alongside the first
    assert pool.hung == 1 and not pool.exhausted

    outcome, _ = run(runner, "quick", call_id="c2")  # the run goes on
    assert outcome.ok and outcome.content == "fast"

    gate.set()
    assert wait_until(lambda: pool.hung == 0)  # the finished thread gave its slot back
    assert state["side_effect"]  # it did run to the end…
    # …but its result reached neither the model nor the run's history
    assert [(r.name, r.ok) for r in runner.results] == [("stuck", False), ("quick", True)]
    stats = history.stats(HostParadigm.MAEVE)["stuck"]
    assert set(stats) == {"calls", "failures", "mean_seconds"}
    assert (stats["calls"], stats["failures"]) == (1, 1)
    # the time charged is the wait up to the limit: at least the 0.2 s limit, at most the call
    assert 0.2 <= stats["mean_seconds"] <= elapsed


def test_the_engines_default_executor_stays_usable_while_sync_tools_hang(hang):
    reg, _ = make()
    n = min(32, (os.cpu_count() or 1) + 4)  # the size of the loop's default executor
    pool, gate = hang.pool(n), hang.gate()

    @reg.register(timeout=0.1)
    def stuck() -> str:
        gate.wait(10)
        return "late"

    runner = ToolRunner(reg, host=HostParadigm.MAEVE, history=ToolHistory(), pool=pool, retries=0)

    async def go() -> tuple[list[str], int, float]:
        ctx = ParadigmAwareToolContext(paradigm=HostParadigm.MAEVE, run_id="r1")
        outcomes = await asyncio.gather(
            *(runner.run(f"c{i}", "stuck", "{}", ctx, lambda e: None) for i in range(n)))
        t = time.perf_counter()
        try:
            value = await asyncio.wait_for(asyncio.to_thread(lambda: 1), 2)  # an engine stage
        finally:
            gate.set()  # even on failure, so asyncio.run can shut its executor down
        return [o.status for o in outcomes], value, time.perf_counter() - t

    statuses, value, seconds = asyncio.run(go())
    assert statuses == ["timeout"] * n
    assert value == 1 and seconds < 1


def test_sync_calls_fail_fast_when_every_tool_thread_is_held_by_a_hung_call(hang):
    reg, _ = make()
    pool, gate_a, gate_b = hang.pool(2), hang.gate(), hang.gate()
    quick_calls = []

    @reg.register(timeout=0.1)
    def stuck() -> str:
        gate_a.wait(10)
        return "late"

    @reg.register(timeout=0.1)
    def wedged() -> str:
        gate_b.wait(10)
        return "late"

    @reg.register
    def quick() -> str:
        quick_calls.append(1)
        return "fast"

    @reg.register
    async def quick_async() -> str:
        return "async still works"

    runner = ToolRunner(reg, host=HostParadigm.MAEVE, history=ToolHistory(), pool=pool, retries=0)

    assert run(runner, "stuck")[0].status == "timeout"
    assert run(runner, "wedged")[0].status == "timeout"
    assert pool.hung == 2 and pool.exhausted

    t = time.perf_counter()
    outcome, events = run(runner, "quick")
    assert time.perf_counter() - t < 0.5  # fails at once, does not queue
    payload = assert_structured_error(outcome.content, "busy")
    assert outcome.status == "busy" and quick_calls == []
    assert "quick was not started" in payload["error"] and "all 2 tool threads" in payload["error"]
    assert "stuck" in payload["error"] and "wedged" in payload["error"]
    assert [(type(e), e.kind) for e in events] == [(ToolCallFailed, "busy")]
    assert reg.breakers["quick"].failures == 0  # not quick's fault
    assert run(runner, "quick_async")[0].content == "async still works"

    gate_a.set()
    assert wait_until(lambda: pool.hung == 1)
    outcome, _ = run(runner, "quick")
    assert outcome.ok and quick_calls == [1]


def test_a_call_that_times_out_while_queued_never_runs(hang):
    reg, _ = make()
    pool, gate = hang.pool(1), hang.gate()
    ran = []

    @reg.register(timeout=1.0)
    def holder() -> str:
        gate.wait(10)
        return "late"

    @reg.register(timeout=0.1)
    def queued() -> str:
        ran.append(1)
        return "never"

    runner = ToolRunner(reg, host=HostParadigm.MAEVE, history=ToolHistory(), pool=pool, retries=0)

    async def go():
        ctx = ParadigmAwareToolContext(paradigm=HostParadigm.MAEVE, run_id="r1")
        first = asyncio.ensure_future(runner.run("c1", "holder", "{}", ctx, lambda e: None))
        await asyncio.sleep(0.02)
        second = await runner.run("c2", "queued", "{}", ctx, lambda e: None)
        gate.set()
        return await first, second

    first, second = asyncio.run(go())
    assert first.ok
    payload = assert_structured_error(second.content, "timeout", retryable=True)
    assert "did not start" in payload["error"] and "never ran" in payload["error"]
    assert wait_until(lambda: pool.hung == 0) and ran == []


def test_cancelling_the_run_abandons_a_running_sync_call_until_it_returns(hang):
    reg, _ = make()
    pool, gate, started = hang.pool(2), hang.gate(), threading.Event()

    @reg.register
    def stuck() -> str:
        started.set()
        gate.wait(10)
        return "late"

    runner = ToolRunner(reg, host=HostParadigm.MAEVE, history=ToolHistory(), pool=pool)

    async def go() -> None:
        ctx = ParadigmAwareToolContext(paradigm=HostParadigm.MAEVE, run_id="r1")
        task = asyncio.ensure_future(runner.run("c1", "stuck", "{}", ctx, lambda e: None))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert pool.hung == 1 and runner.results == []
    gate.set()
    assert wait_until(lambda: pool.hung == 0)


def test_an_async_tools_timeout_still_cancels_it(hang):
    reg, _ = make()
    pool = hang.pool(2)
    seen = {"cancelled": False}

    @reg.register(timeout=0.1)
    async def sleepy() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        return "never"

    runner = ToolRunner(reg, host=HostParadigm.MAEVE, history=ToolHistory(), pool=pool, retries=0)

    t = time.perf_counter()
    outcome, _ = run(runner, "sleepy")
    assert time.perf_counter() - t < 2
    payload = assert_structured_error(outcome.content, "timeout", retryable=True)
    assert "abandoned" not in payload["error"]  # an async call is cancelled, not abandoned
    assert seen["cancelled"] and pool.hung == 0


def test_a_process_exits_although_an_abandoned_tool_never_returns(tmp_path):
    # The CLI prints its answer and must exit; a kernel must shut down. Tool threads are daemons.
    script = tmp_path / "hang.py"
    script.write_text(
        "import asyncio, threading, time\n"
        "from fourhosts_jupyter.paradigms import HostParadigm\n"
        "from fourhosts_jupyter.tools import ParadigmAwareToolContext, ToolHistory, ToolRegistry, ToolRunner\n"
        "reg = ToolRegistry()\n"
        "@reg.register(timeout=0.1)\n"
        "def forever() -> str:\n"
        "    '''Never returns.'''\n"
        "    threading.Event().wait()\n"
        "runner = ToolRunner(reg, host=HostParadigm.MAEVE, history=ToolHistory())\n"
        "ctx = ParadigmAwareToolContext(paradigm=HostParadigm.MAEVE, run_id='r')\n"
        "out = asyncio.run(runner.run('c1', 'forever', '{}', ctx, lambda e: None))\n"
        "print('abandoned' if 'abandoned' in out.content else out.content, flush=True)\n"
    )
    # Before, the interpreter joined the pool's threads at exit: this would hang, not fail.
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "abandoned"
