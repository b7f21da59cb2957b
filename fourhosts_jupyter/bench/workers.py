"""Batch workers on a shared PostgreSQL store: ``python -m fourhosts_jupyter.bench workers``.

    python -m fourhosts_jupyter.bench workers [--n 40] [--rounds 3] [--first-delay 0.3] [--url …]

Every figure comes from the real parts: ``fourhosts worker`` subprocesses, procrastinate's queue,
the engine against the scripted server through the ``openai`` client (each answer's first byte
after ``--first-delay`` s, as a model would), all in one PostgreSQL.

1. Throughput, items/s, medians over ``--rounds``: a batch answered in this process (the
   in-process scheduler, concurrency 4: the baseline) against the same batch given to two
   workers of concurrency 2 (``workers=True``).
2. Two workers with one killed (SIGKILL) mid-batch: items, answers recorded, items asked of the
   model twice (the killed worker's, answered again after its lease), answers recorded twice.
3. The budget reservation each model call makes in the database (reserve + release), median
   over 300 rounds, beside the in-process ``Budget.reserve`` + ``settle``.

Without ``--url`` a private PostgreSQL 16 with pgvector is started with ``pgserver``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any
from ._pgserver import database

HEARTBEAT, LEASE = "0.5", "4"


def _questions(n: int, tag: str) -> list[str]:
    return [f"How should city {tag}{i:03d} cut traffic deaths in half?" for i in range(n)]


def _engine(server: Any, store: Any) -> Any:
    from ..config import Settings
    from ..engine import Engine
    from ..memory.embeddings import HashingEmbedder
    from ..tools import ToolRegistry

    s = Settings(base_url=server.base_url, model="scripted-model", max_retries=0)
    return Engine(s, store=store, embedder=HashingEmbedder(), tools=ToolRegistry())


def _workers(url: str, n: int, home: str) -> list[subprocess.Popen]:
    env = {**os.environ, "FOURHOSTS_EMBEDDER": "hashing", "FOURHOSTS_HOME": home, "HF_HUB_OFFLINE": "1"}
    return [subprocess.Popen([sys.executable, "-m", "fourhosts_jupyter.cli", "worker", "--store", url,
                              "-c", "2", "--heartbeat", HEARTBEAT, "--lease", LEASE],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            for _ in range(n)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _tag(req: Any) -> str:
    user = [m for m in req.messages if m.get("role") == "user"][-1]
    return str(user["content"]).split("city ")[1][:4]


def run(url: str, n: int, rounds: int, first_delay: float) -> None:
    from ..memory.backends import open_store
    from ..schedule.batch import batch
    from ..testing import Reply, ScriptedServer

    # no evaluation stage (its judge call wants JSON the scripted answer is not), here and in
    # the workers, which inherit the environment
    os.environ["FOURHOSTS_EVALUATION"] = "0"
    store = open_store(url)
    home = tempfile.mkdtemp(prefix="fourhosts-bench-workers-")
    reply = Reply.say("Lower speeds save lives [1].", usage=(1_000, 50), first_delay=first_delay)
    with ScriptedServer() as server:
        server.set_default(reply)
        engine = _engine(server, store)
        batch(_questions(2, "W"), engine=engine, progress=False, paradigm="bernard")  # warm: seeded, migrated
        procs = _workers(url, 2, home)
        try:
            batch(_questions(2, "V"), engine=engine, workers=True, progress=False, paradigm="bernard")
            local, shared = [], []
            for r in range(rounds):
                t = time.perf_counter()
                batch(_questions(n, f"L{r}"), engine=engine, concurrency=4, progress=False, paradigm="bernard")
                local.append(n / (time.perf_counter() - t))
                t = time.perf_counter()
                batch(_questions(n, f"S{r}"), engine=engine, workers=True, progress=False, paradigm="bernard")
                shared.append(n / (time.perf_counter() - t))
        finally:
            _stop(procs)
        lo, sh = statistics.median(local), statistics.median(shared)
        print(f"1. {n} items, first byte after {first_delay:g} s, median of {rounds} rounds")
        print(f"   in this process, concurrency 4 (baseline)  {lo:6.2f} items/s")
        print(f"   2 workers × concurrency 2                  {sh:6.2f} items/s  ({sh / lo:.2f}x)")

        server.clear()
        procs = _workers(url, 1, home)
        import threading

        box: dict[str, Any] = {}
        t = time.perf_counter()
        th = threading.Thread(target=lambda: box.update(df=batch(
            _questions(n, "K"), engine=engine, workers=True, progress=False, paradigm="bernard")))
        th.start()
        while len(server.chat_requests) < 2:
            time.sleep(0.02)
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait()
        cut = Counter(_tag(r) for r in server.chat_requests)
        procs += _workers(url, 1, home)
        th.join()
        took = time.perf_counter() - t
        _stop(procs)
        df = box["df"]
        asked = Counter(_tag(r) for r in server.chat_requests)
        with store.connect() as con:
            recorded = con.execute("SELECT count(*), count(DISTINCT idx) FROM batch_results WHERE batch_id = %s",
                                   [df.attrs["batch_id"]]).fetchone()
        print(f"2. {n} items, 2 workers, one killed (SIGKILL) with {len(cut)} item(s) in flight, lease {LEASE} s")
        print(f"   answered ok {int((df['status'] == 'ok').sum())}/{n} · answers recorded {recorded[0]} "
              f"(distinct items {recorded[1]}) · asked of the model twice {sum(c == 2 for c in asked.values())} "
              f"· more than twice {sum(c > 2 for c in asked.values())} · in {took:.1f} s")

    from ..schedule.budget import Budget
    from ..schedule.pg_batch_store import PgBatchStore

    rows = PgBatchStore(store)
    rows.create("b_bench_budget", ["q"], source="bench", column="",
                options={"workers": True, "budget_tokens": 10**12})
    db, mem = [], []
    b = Budget(10**12, scope="batch")
    for _ in range(300):
        t = time.perf_counter()
        rows.reserve("b_bench_budget", 0, 2_000, None)
        rows.release("b_bench_budget", 0, (2_000, 0.0), 1_000, None)
        db.append(time.perf_counter() - t)
        t = time.perf_counter()
        b.settle(b.reserve(2_000, None), 1_000, None)
        mem.append(time.perf_counter() - t)
    d, m = statistics.median(db) * 1e3, statistics.median(mem) * 1e3
    print("3. a model call's budget reservation, reserve + release, median of 300")
    print(f"   in the database (shared by workers)  {d:7.3f} ms")
    print(f"   in process (Budget)                  {m:7.4f} ms  (database {d / m:.0f}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench workers")
    ap.add_argument("--n", type=int, default=40, help="items per batch (default 40)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--first-delay", type=float, default=0.3, help="seconds before each answer's first byte")
    ap.add_argument("--url", help="an existing PostgreSQL with pgvector (default: start pgserver)")
    args = ap.parse_args(argv)
    with database(args.url) as url:
        run(url, args.n, args.rounds, args.first_delay)
    return 0
