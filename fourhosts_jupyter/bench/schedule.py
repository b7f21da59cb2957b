"""The scheduler and batches: ``python -m fourhosts_jupyter.bench schedule``.

1. Overhead per task, submit → start → result of a coroutine that does nothing, against a bare
   ``asyncio.create_task`` in the same process (goal ≤ 50 µs): many tasks in flight, and one
   at a time. Medians over rounds.
2. A batch of questions against the scripted server with realistic delays (first token after
   ``--first-delay`` s, ``--delay`` s between ``--chunks`` chunks), concurrency 8 vs 1, each
   through the whole engine and the store (goal: speed-up ≥ 6×). Also the store's open cost
   with and without the batch's kept-open connection (batch_store.kept_open).
3. The budget: random estimates and usage through the Scheduler, and a real batch in a token
   budget: how far past the budget it ever went, against the largest single estimate.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path


async def _nop() -> int:
    return 1


def overhead(rounds: int, n: int) -> None:
    from ..schedule import Scheduler

    async def sched_many() -> float:
        s = Scheduler(concurrency=8)
        t = time.perf_counter()
        hs = [s.submit(_nop) for _ in range(n)]
        for h in hs:
            await h
        return (time.perf_counter() - t) / n

    async def bare_many() -> float:
        t = time.perf_counter()
        ts = [asyncio.create_task(_nop()) for _ in range(n)]
        for x in ts:
            await x
        return (time.perf_counter() - t) / n

    async def sched_one() -> float:
        s = Scheduler(concurrency=8)
        t = time.perf_counter()
        for _ in range(n):
            await s.submit(_nop)
        return (time.perf_counter() - t) / n

    async def bare_one() -> float:
        t = time.perf_counter()
        for _ in range(n):
            await asyncio.create_task(_nop())
        return (time.perf_counter() - t) / n

    async def main() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {k: [] for k in ("sm", "bm", "so", "bo")}
        for _ in range(rounds):  # interleaved, so a busy moment hits both sides
            out["bm"].append(await bare_many())
            out["sm"].append(await sched_many())
            out["bo"].append(await bare_one())
            out["so"].append(await sched_one())
        return out

    r = asyncio.run(main())
    med = {k: statistics.median(v) * 1e6 for k, v in r.items()}
    for label, s, b in (("8 slots, all submitted then awaited", "sm", "bm"),
                        ("one at a time (submit, await)", "so", "bo")):
        extra = med[s] - med[b]
        print(f"overhead, {label}: scheduler {med[s]:.1f} µs/task vs bare create_task {med[b]:.1f} µs "
              f"→ +{extra:.1f} µs, ratio {med[s] / med[b]:.2f}× "
              f"(goal ≤ 50 µs per task: {'met' if med[s] <= 50 else 'MISSED'}); "
              f"median of {rounds} rounds × {n:,} tasks")


def _engine(server, path: Path):  # noqa: ANN001, ANN202
    from ..config import Settings
    from ..engine import Engine
    from ..memory.embeddings import HashingEmbedder
    from ..memory.store import Store
    from ..tools import ToolRegistry

    s = Settings(base_url=server.base_url, model="scripted-model", max_retries=0)
    return Engine(s, store=Store(path), embedder=HashingEmbedder(), tools=ToolRegistry())


def store_open(path: Path, n: int = 15) -> None:
    from ..memory.store import Store
    from ..schedule.batch_store import kept_open

    store = Store(path)

    def med() -> float:
        xs = []
        for _ in range(n):
            t = time.perf_counter()
            with store.connect() as con:
                con.execute("SELECT count(*) FROM runs").fetchall()
            xs.append(time.perf_counter() - t)
        return statistics.median(xs) * 1000

    cold = med()
    with kept_open(store):
        warm = med()
    print(f"store operation (open, one query, close): {cold:.1f} ms alone vs {warm:.2f} ms while a "
          f"batch keeps the database open ({cold / warm:.0f}× less)")


def batch_speed(questions: int, chunks: int, first_delay: float, delay: float, home: Path) -> None:
    from ..schedule.batch import batch
    from ..testing import Reply, ScriptedServer

    text = " ".join(f"word{i}" for i in range(chunks))
    reply = Reply.say(text, chunks=chunks, first_delay=first_delay, delay=delay, usage=(1_000, chunks))
    qs = [f"How should city {i} cut traffic deaths in half?" for i in range(questions)]
    per = first_delay + delay * chunks
    print(f"batch: {questions} questions, each reply {chunks} chunks: first after {first_delay * 1000:.0f} ms, "
          f"then every {delay * 1000:.0f} ms (≥ {per:.2f} s of waiting per question)")
    with ScriptedServer() as server:
        server.set_default(reply)
        engine = _engine(server, home / "bench.duckdb")
        batch(qs[:2], engine=engine, concurrency=2, progress=False)  # warm: seed, imports, client
        store_open(home / "bench.duckdb")
        times = {}
        for c in (8, 1):
            t = time.perf_counter()
            df = batch(qs, engine=engine, concurrency=c, progress=False)
            times[c] = time.perf_counter() - t
            ok = int((df["status"] == "ok").sum())
            print(f"  concurrency {c}: {times[c]:.1f} s ({times[c] / questions:.3f} s per question, "
                  f"{ok}/{questions} ok)")
    speed = times[1] / times[8]
    print(f"  speed-up 8 vs 1: {speed:.2f}× (goal ≥ 6×: {'met' if speed >= 6 else 'MISSED'}); "
          f"ideal with no CPU per question: {min(8.0, questions / -(-questions // 8)):.1f}×")


def budget_check(trials: int, home: Path) -> None:
    from ..schedule import Budget, Scheduler
    from ..schedule.batch import batch
    from ..testing import Reply, ScriptedServer

    rng = random.Random(7)
    worst = 0.0

    async def one_trial() -> tuple[int, int, int]:
        budget = Budget(tokens=rng.randint(5_000, 50_000), scope="batch")
        sched = Scheduler(concurrency=8, budget=budget, retries=0)
        ests = [rng.randint(100, 3_000) for _ in range(200)]

        async def work(est: int) -> None:
            await asyncio.sleep(rng.random() * 0.002)
            budget.record(int(est * rng.uniform(0.3, 1.0)))  # a task uses at most its estimate

        hs = [sched.submit(work, e, tokens=e) for e in ests]
        await asyncio.gather(*hs, return_exceptions=True)
        return budget.used_tokens, budget.limit_tokens or 0, max(ests)

    over = 0
    for _ in range(trials):
        used, limit, biggest = asyncio.run(one_trial())
        worst = max(worst, (used - limit) / biggest)
        over += used > limit
    print(f"budget, scheduler: {trials} random trials (200 tasks each, λ 8): past the budget in {over}; "
          f"worst overshoot {max(0.0, worst):.2f} of the largest task estimate (goal ≤ 1)")

    with ScriptedServer() as server:
        server.set_default(Reply.say("Lower speeds save lives [1].", usage=(1_000, 50)))
        engine = _engine(server, home / "budget.duckdb")
        limit = 12_000
        df = batch([f"How should city {i} cut traffic deaths?" for i in range(30)], engine=engine,
                   concurrency=8, budget_tokens=limit, progress=False)
        used = int(df["tokens"].sum())
        from ..schedule.batch import item_estimate

        est = item_estimate("How should city 10 cut traffic deaths?", "scripted-model", None)
        print(f"budget, real batch: {limit:,} tokens, λ 8, 30 questions of 1,050 tokens: used {used:,} "
              f"({(df['status'] == 'ok').sum()} answered, the rest left pending), state "
              f"{df.attrs['state']}; over by {max(0, used - limit):,} (one task's estimate ≥ {est:,}: "
              f"{'met' if used - limit <= est else 'MISSED'}); requests sent {len(server.chat_requests)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench schedule")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tasks", type=int, default=2_000)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--first-delay", type=float, default=0.3)
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--skip-batch", action="store_true", help="only the overhead and budget checks")
    args = ap.parse_args(argv)

    import os

    os.environ.setdefault("FOURHOSTS_EMBEDDER", "hashing")
    overhead(args.rounds, args.tasks)
    with tempfile.TemporaryDirectory(prefix="fourhosts-bench-schedule-") as d:
        budget_check(args.trials, Path(d))
        if not args.skip_batch:
            batch_speed(args.questions, args.chunks, args.first_delay, args.delay, Path(d))
    return 0
