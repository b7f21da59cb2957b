"""The scheduler and budgets: priorities, budget admission and refusal (before any request
reaches the loopback server), retries with backoff, cancellation, status."""

from __future__ import annotations

import asyncio

import pytest
from openai_server import Reply

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import (
    BudgetExceeded,
    ConfigError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderServerError,
    RunError,
)
from fourhosts_jupyter.events import AnswerReady, RunFailed, TextDelta
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.schedule import Budget, Scheduler, backoff_delay
from fourhosts_jupyter.schedule.guard import estimate_call
from fourhosts_jupyter.tools import ToolRegistry

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


def run(coro):
    return asyncio.run(coro)


class Sleeps:
    """Records each backoff instead of sleeping it."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


# -- priorities and slots -----------------------------------------------------------------------


def test_higher_priority_starts_first_and_ties_keep_their_order():
    async def main():
        sched = Scheduler(concurrency=1)
        gate = asyncio.Event()
        order: list[str] = []

        async def work(name: str) -> str:
            order.append(name)
            if name == "blocker":
                await gate.wait()
            return name

        blocker = sched.submit(work, "blocker")
        handles = [sched.submit(work, n, priority=p) for n, p in
                   [("low", 0), ("high", 5), ("mid", 2), ("high2", 5), ("low2", 0)]]
        await asyncio.sleep(0)
        assert sched.status().running == 1 and sum(sched.status().pending.values()) == 5
        gate.set()
        assert await blocker == "blocker"
        assert [await h for h in handles] == ["low", "high", "mid", "high2", "low2"]
        return order

    assert run(main()) == ["blocker", "high", "high2", "mid", "low", "low2"]


def test_at_most_lambda_tasks_run_at_once():
    async def main():
        sched = Scheduler(concurrency=3)
        live = peak = 0

        async def work():
            nonlocal live, peak
            live += 1
            peak = max(peak, live)
            await asyncio.sleep(0.005)
            live -= 1

        await asyncio.gather(*(sched.submit(work) for _ in range(20)))
        return peak, sched.status()

    peak, status = run(main())
    assert peak == 3
    assert (status.running, status.done, status.failed) == (0, 20, 0)


def test_status_counts_pending_by_host():
    async def main():
        sched = Scheduler(concurrency=1)
        gate = asyncio.Event()
        handles = [sched.submit(gate.wait, host=h) for h in ("bernard", "maeve", "maeve", None)]
        await asyncio.sleep(0)
        status = sched.status()
        gate.set()
        await asyncio.gather(*handles)
        return status

    status = run(main())
    assert status.running == 1
    assert status.pending == {"maeve": 2, "-": 1}
    assert "pending -" in str(status) and status._repr_mimebundle_()["text/plain"] == str(status)


# -- budget admission -----------------------------------------------------------------------------


def test_a_task_over_the_budget_fails_clearly_and_smaller_ones_behind_it_still_run():
    async def main():
        budget = Budget(tokens=1_000, scope="batch")
        sched = Scheduler(concurrency=4, budget=budget)
        started: list[str] = []

        async def work(name: str, used: int) -> str:
            started.append(name)
            budget.record(used)
            await asyncio.sleep(0.01)
            return name

        big = sched.submit(work, "big", 5_000, tokens=5_000, priority=9)
        small = [sched.submit(work, f"s{i}", 100, tokens=150) for i in range(3)]
        with pytest.raises(BudgetExceeded) as err:
            await big
        assert [await h for h in small] == ["s0", "s1", "s2"]
        return started, err.value, big, sched.budget_usage()

    started, err, big, usage = run(main())
    assert "big" not in started and big.status == "failed" and big.attempts == 0
    assert err.scope == "batch" and err.unit == "tokens" and err.needed == 5_000
    assert "batch budget of 1,000 tokens" in str(err) and "refused before it ran" in str(err)
    assert (usage.used_tokens, usage.available_tokens, usage.utilization) == (300, 700, 0.3)


def test_a_task_that_fits_once_running_work_settles_waits_instead_of_failing():
    async def main():
        budget = Budget(tokens=1_000, scope="batch")
        sched = Scheduler(concurrency=4, budget=budget)
        events: list[str] = []

        async def work(name: str, used: int) -> None:
            events.append(f"start {name}")
            await asyncio.sleep(0.02)
            budget.record(used)
            events.append(f"end {name}")

        a = sched.submit(work, "a", 200, tokens=700)  # holds 700 while it runs, uses 200
        b = sched.submit(work, "b", 100, tokens=600, priority=5)  # does not fit beside a
        c = sched.submit(work, "c", 50, tokens=200)  # fits: starts past b
        await asyncio.sleep(0)
        waiting = sched.status()
        await asyncio.gather(a, b, c)
        return events, waiting, budget.usage()

    events, waiting, usage = run(main())
    assert waiting.running == 2 and waiting.pending == {"-": 1}
    assert events.index("start b") > events.index("end a")
    assert events.index("start c") < events.index("end a")
    assert usage.used_tokens == 350


def test_on_over_budget_fail_does_not_wait():
    async def main():
        budget = Budget(tokens=1_000)
        sched = Scheduler(concurrency=4, budget=budget, on_over_budget="fail")
        gate = asyncio.Event()
        a = sched.submit(gate.wait, tokens=700)
        b = sched.submit(gate.wait, tokens=600)
        await asyncio.sleep(0)
        assert b.status == "failed"
        gate.set()
        await a
        with pytest.raises(BudgetExceeded):
            await b

    run(main())


def test_nested_budgets_refuse_at_the_tightest_level_and_count_on_every_level():
    session = Budget(usd=0.01, scope="session")
    batch = Budget(tokens=10_000, parent=session, scope="batch")
    item = Budget(tokens=2_000, parent=batch, scope="run")
    hold = item.reserve(1_500, 0.004)
    assert batch.usage().available_tokens == 8_500 and session.usage().reserved_usd == 0.004
    with pytest.raises(BudgetExceeded) as err:
        item.reserve(600, 0.0)
    assert err.value.scope == "run"
    item.settle(hold, 1_200, 0.003)
    assert (item.used_tokens, batch.used_tokens, session.used_usd) == (1_200, 1_200, 0.003)
    assert session.usage().reserved_usd == 0.0
    with pytest.raises(BudgetExceeded) as err:
        item.reserve(100, 0.0075)
    assert err.value.scope == "session" and err.value.unit == "usd"
    with pytest.raises(ConfigError):
        Budget(tokens=-1)


# -- retries ------------------------------------------------------------------------------------


def test_retryable_failures_are_retried_with_growing_jittered_backoff():
    sleeps = Sleeps()

    async def main():
        sched = Scheduler(concurrency=2, retries=4, backoff=1.0, backoff_cap=60, sleep=sleeps)
        attempts = 0

        async def flaky():
            nonlocal attempts
            attempts += 1
            if attempts < 4:
                raise ProviderServerError("500 from the server", status_code=500)
            return "ok"

        h = sched.submit(flaky)
        return await h, h

    result, h = run(main())
    assert result == "ok" and h.attempts == 4 and h.status == "done"
    assert sleeps.calls == h.delays and len(sleeps.calls) == 3
    for k, d in enumerate(sleeps.calls, start=1):  # full jitter under base·2^(k-1)
        assert 0 <= d <= 2 ** (k - 1)


def test_backoff_is_exponential_with_full_jitter_and_honours_retry_after():
    top = lambda lo, hi: hi  # noqa: E731 - the jitter's upper end
    assert [backoff_delay(k, base=0.5, cap=3, rng=top) for k in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
    assert backoff_delay(1, base=0.5, retry_after=2.5, rng=top) == 2.5
    assert len({round(backoff_delay(3, base=1.0), 6) for _ in range(20)}) > 1  # jittered


def test_a_rate_limited_task_waits_at_least_retry_after():
    sleeps = Sleeps()

    async def main():
        sched = Scheduler(retries=1, backoff=0.01, sleep=sleeps)
        calls = 0

        async def limited():
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ProviderRateLimited("429", retry_after=1.5)
            return calls

        return await sched.submit(limited)

    assert run(main()) == 2 and sleeps.calls == [1.5]


@pytest.mark.parametrize("error", [ProviderAuthError("key refused"), ValueError("a bug")])
def test_a_non_retryable_failure_fails_at_once(error):
    sleeps = Sleeps()

    async def main():
        sched = Scheduler(retries=5, sleep=sleeps)

        async def broken():
            raise error

        h = sched.submit(broken)
        with pytest.raises(type(error)):
            await h
        return h

    h = run(main())
    assert h.attempts == 1 and h.status == "failed" and sleeps.calls == []


def test_retries_give_up_after_the_limit():
    async def main():
        sched = Scheduler(retries=2, sleep=Sleeps())

        async def down():
            raise ProviderServerError("503")

        h = sched.submit(down)
        with pytest.raises(ProviderServerError):
            await h
        return h

    assert run(main()).attempts == 3


# -- cancellation -------------------------------------------------------------------------------


def test_cancelling_a_pending_task_means_it_never_starts_and_a_running_one_is_stopped():
    async def main():
        sched = Scheduler(concurrency=1)
        started: list[str] = []
        stopped = asyncio.Event()

        async def work(name: str) -> str:
            started.append(name)
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                stopped.set()
                raise
            return name

        running = sched.submit(work, "running")
        pending = sched.submit(work, "pending")
        after = sched.submit(asyncio.sleep, 0, result="after")
        await asyncio.sleep(0)
        assert pending.cancel() and pending.status == "cancelled"
        assert running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert await after == "after"  # the slot was given back
        return started, running, pending, stopped.is_set()

    started, running, pending, stopped = run(main())
    assert started == ["running"] and stopped
    assert running.status == "cancelled" and pending.status == "cancelled"
    assert not pending.cancel()  # already finished


# -- the engine's model calls ---------------------------------------------------------------------


def _engine(server, store, **kw) -> Engine:
    reg = ToolRegistry()

    @reg.register
    def city_population(city: str) -> dict:
        """Population of a city."""
        return {"city": city, "population": 700_000}

    settings = Settings(base_url=server.base_url, model="scripted-model", max_retries=0,
                        prices={"scripted-model": [1.0, 2.0]})
    return Engine(settings, store=store, embedder=HashingEmbedder(), tools=reg, **kw)


def test_a_call_over_the_run_budget_is_refused_before_the_server_sees_it(openai_server, store):
    openai_server.script(Reply.say("never sent"))
    engine = _engine(openai_server, store)
    events = list(engine.stream(QUESTION, paradigm="bernard", budget_tokens=300))
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.kind == "budget"
    assert "run budget of 300 tokens" in failed.error and "refused before it ran" in failed.error
    assert openai_server.chat_requests == []  # no request left the process
    run_ = store.get_run(events[0].run_id)
    assert (run_["status"], run_["error_kind"]) == ("failed", "budget")
    assert run_["options"]["budget_tokens"] == 300


def test_the_second_call_is_refused_and_the_partial_answer_is_kept(openai_server, store):
    # the first turn reports a large usage; the run budget has no room left for the second
    openai_server.script(
        Reply.call("city_population", {"city": "Lyon"}, text="Looking it up. ", usage=(6_000, 4_000)),
        Reply.say("never sent"),
    )
    engine = _engine(openai_server, store)
    with pytest.raises(RunError) as err:
        engine.research(QUESTION, paradigm="bernard", budget_tokens=12_000)
    assert err.value.kind == "budget" and err.value.partial_text == "Looking it up. "
    assert len(openai_server.chat_requests) == 1
    run_ = store.get_run(err.value.run_id)
    assert run_["answer"] == "Looking it up. " and run_["error_kind"] == "budget"


def test_a_usd_budget_uses_the_price_and_a_session_budget_spans_runs(openai_server, store):
    # $1/$2 per 1M: a run costs $0.010; a call is estimated at ≥ $0.0082 (4,096 output tokens)
    openai_server.set_default(Reply.say("Lower speeds save lives [1].", usage=(6_000, 2_000)))
    session = Budget(usd=0.015, scope="session")
    engine = _engine(openai_server, store, budget=session)
    first = engine.research(QUESTION, paradigm="bernard")
    assert first.usage.cost_usd == pytest.approx(0.010) and session.used_usd == pytest.approx(0.010)
    with pytest.raises(RunError) as err:
        engine.research(QUESTION, paradigm="bernard")
    assert err.value.kind == "budget" and "session budget of $0.0150 has $0.0050 left" in str(err.value)
    assert len(openai_server.chat_requests) == 1


def test_a_usd_budget_without_a_known_price_is_a_clear_error(openai_server, store):
    engine = Engine(Settings(base_url=openai_server.base_url, model="unpriced", max_retries=0),
                    store=store, embedder=HashingEmbedder(), tools=ToolRegistry())
    events = list(engine.stream(QUESTION, paradigm="bernard", budget_usd=1.0))
    assert isinstance(events[-1], RunFailed) and "FOURHOSTS_PRICES" in events[-1].error
    assert openai_server.chat_requests == []


def test_within_budget_the_run_answers_and_the_usage_is_charged(openai_server, store):
    openai_server.script(Reply.say("Lower speeds save lives [1].", usage=(1_000, 20)))
    budget = Budget(tokens=50_000, scope="batch")
    engine = _engine(openai_server, store)
    events = list(engine.stream(QUESTION, paradigm="bernard", budget=budget, budget_tokens=20_000))
    assert any(isinstance(e, AnswerReady) for e in events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Lower speeds save lives [1]."
    assert budget.usage().used_tokens == 1_020 and budget.usage().reserved_tokens == 0


def test_the_estimate_counts_the_prompt_and_the_output_cap():
    from fourhosts_jupyter.llm.base import ModelRequest

    short = ModelRequest(messages=[{"role": "user", "content": "hi"}], effort="low")
    long = ModelRequest(messages=[{"role": "user", "content": "word " * 400}], effort="low", max_tokens=50)
    e1, e2 = estimate_call(short, "gpt-4o-mini"), estimate_call(long, "gpt-4o-mini")
    assert e1.max_output_tokens == 1000 and e2.max_output_tokens == 50
    assert 380 <= e2.prompt_tokens <= 420
    assert e2.usd == pytest.approx((e2.prompt_tokens * 0.15 + 50 * 0.60) / 1e6)
    assert estimate_call(short, "my-local-model").usd is None


# -- the faces: fh.research, fourhosts research, %%research ---------------------------------------


def test_fh_research_takes_budget_options(openai_server, tmp_path, monkeypatch):
    import fourhosts_jupyter as fh

    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("FOURHOSTS_MODEL", "scripted-model")
    monkeypatch.setenv("FOURHOSTS_EMBEDDER", "hashing")
    openai_server.script(Reply.say("never sent"))
    with pytest.raises(RunError) as err:
        fh.research(QUESTION, store=str(tmp_path / "s.duckdb"), paradigm="bernard", budget_tokens=100)
    assert err.value.kind == "budget" and openai_server.chat_requests == []


def test_cli_research_refuses_a_call_over_its_budget(openai_server, tmp_path):
    import os
    import subprocess
    import sys

    openai_server.script(Reply.say("never sent"))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(FOURHOSTS_HOME=str(tmp_path / "home"), FOURHOSTS_EMBEDDER="hashing")
    out = subprocess.run(
        [sys.executable, "-m", "fourhosts_jupyter.cli", "research", "--base-url", openai_server.base_url,
         "--model", "scripted-model", "-p", "bernard", "--budget-tokens", "200", QUESTION],
        capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 1
    assert "the run failed (budget): the run budget of 200 tokens" in out.stderr
    assert openai_server.chat_requests == []


def test_research_cell_budget_and_the_session_budget(openai_server, tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from fourhosts_jupyter.jupyter.magics import CellRunError

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    m = ip.magics_manager.registry["ResearchMagics"]
    saved = (m.store_path, m.base_url, m.model, m.prices, m.live)
    monkeypatch.setenv("FOURHOSTS_EMBEDDER", "hashing")
    m.store_path, m.base_url, m.model, m.live = str(tmp_path / "s.duckdb"), openai_server.base_url, "scripted-model", False
    m.prices = {"scripted-model": [1.0, 2.0]}
    try:
        openai_server.set_default(Reply.say("Lower speeds save lives [1].", usage=(6_000, 2_000)))
        with capture_output(), pytest.raises(CellRunError) as err:
            ip.run_cell_magic("research", "-p bernard --budget-tokens 100", QUESTION)
        assert err.value.kind == "budget" and openai_server.chat_requests == []

        ip.run_line_magic("config", "ResearchMagics.session_budget_usd = 0.015")
        with capture_output():
            ip.run_cell_magic("research", "-p bernard --save first", QUESTION)  # $0.010
        assert m.session_budget.usage().used_usd == pytest.approx(0.010)
        with capture_output(), pytest.raises(CellRunError) as err:
            ip.run_cell_magic("research", "-p bernard", QUESTION)
        assert err.value.kind == "budget" and "session budget of $0.0150" in str(err.value)
        assert len(openai_server.chat_requests) == 1
    finally:
        m.store_path, m.base_url, m.model, m.prices, m.live = saved
        m.session_budget_usd = None
        m._session_budget = None


# -- the engine's layer tasks go through the scheduler ----------------------------------------------


@pytest.mark.parametrize("slots, expected_peak", [(4, 2), (1, 1)])
def test_sources_are_compressed_concurrently_as_scheduler_tasks(slots, expected_peak):
    from pathlib import Path

    from fourhosts_jupyter.context.compress import acompress_sources
    from fourhosts_jupyter.events import Source

    corpus = Path(__file__).resolve().parent.parent / "fourhosts_jupyter" / "data" / "corpus"
    texts = [(corpus / f"{n}.md").read_text() for n in ("speed-management", "vision-zero-safe-system")]
    sources = [Source(n=i + 1, id=f"m{i}", title=f"t{i}", text=t) for i, t in enumerate(texts)]
    live = peak = 0

    async def summarizer(prompt: str, max_tokens: int) -> str:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.05)
        live -= 1
        return ""  # rejected: the extractive step answers; only the concurrency is looked at

    async def main():
        sched = Scheduler(concurrency=slots)
        out, report = await acompress_sources(sources, host="dolores", budget_tokens=400,
                                              providers=[summarizer], embedder=HashingEmbedder(),
                                              scheduler=sched)
        return out, report, sched.status()

    out, report, status = run(main())
    assert peak == expected_peak
    assert [s.id for s in out] == ["m0", "m1"] and report.tokens_in > 400
    assert (status.done, status.running, status.failed) == (2, 0, 0)
