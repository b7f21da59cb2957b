"""Learning benchmark: what reading the ratings adds to a classification.

    python -m fourhosts_jupyter.bench learning [--ratings 100,1000,10000] [--rounds 30]

For stores holding N rated runs (runs, features and ratings written in bulk, spread over 10
days and the brief's domains), the median time of ``classify()`` alone (the baseline, same
process, same question cache) against ``classify()`` + ``learning.route()`` (one store query,
weights, patterns, the adjustment), and of ``learning.load()`` by itself. Then whole offline
runs (``Engine.research``) on the bundled corpus with 1,000 rated runs in the store, learning
off (the baseline) against on, interleaved, with the host forced so both do the same work.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

QUESTION = "Which database technology should we pick for our analytics software?"


def _fill(store, n: int) -> None:  # noqa: ANN001
    from ..learning import DOMAINS

    domains = [d for d, _ in DOMAINS]
    with store.connect() as con:
        con.execute(
            """INSERT INTO runs (id, question, status, paradigm, started_at)
               SELECT 'r_' || lpad(i::VARCHAR, 16, '0'), 'question ' || i, 'ok',
                      ['dolores', 'teddy', 'bernard', 'maeve'][1 + i % 4], now()
               FROM range(?) t(i)""",
            [n],
        )
        con.execute(
            """INSERT INTO run_features
               SELECT 'r_' || lpad(i::VARCHAR, 16, '0'), 9, i % 2 = 0, i % 3 = 0, false, false,
                      'question', ?[1 + i % ?], now()
               FROM range(?) t(i)""",
            [domains, len(domains), n],
        )
        con.execute(
            """INSERT INTO feedback
               SELECT 'r_' || lpad(i::VARCHAR, 16, '0'), [4, 5, 5, 3, 5][1 + i % 5], '',
                      now()::TIMESTAMP - to_days((i % 10)::INTEGER)
               FROM range(?) t(i)""",
            [n],
        )


def _median_ms(fn, rounds: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench learning")
    ap.add_argument("--ratings", default="100,1000,10000")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=7, help="offline engine runs per side (0: skip)")
    args = ap.parse_args(argv)

    from .. import learning
    from ..classifier import classify
    from ..memory.store import Store

    classify(QUESTION)  # warm: model, prototypes, question cache
    print(f"{'ratings':>8} {'classify ms':>12} {'+route ms':>10} {'ratio':>6} {'load ms':>8} {'patterns':>9}")
    for n in (int(x) for x in args.ratings.split(",")):
        with tempfile.TemporaryDirectory(prefix="fh-bench-learning-") as tmp:
            store = Store(Path(tmp) / "store.duckdb")
            _fill(store, n)
            learned = learning.load(store)
            plain = _median_ms(lambda: classify(QUESTION), args.rounds)
            routed = _median_ms(lambda: learning.route(store, classify(QUESTION)), args.rounds)
            load = _median_ms(lambda: learning.load(store), args.rounds)
            print(f"{n:>8} {plain:>12.2f} {routed:>10.2f} {routed / plain:>6.2f} {load:>8.2f} "
                  f"{len(learned.patterns):>9}")  # fmt: skip
    if args.runs:
        _engine_runs(args.runs)
    return 0


def _engine_runs(runs: int) -> None:
    from ..config import Settings
    from ..engine import Engine
    from ..memory.seed import ensure_seeded
    from ..memory.store import Store

    with tempfile.TemporaryDirectory(prefix="fh-bench-learning-") as tmp:
        store = Store(Path(tmp) / "store.duckdb")
        ensure_seeded(store)
        _fill(store, 1000)
        engines = {on: Engine(Settings.from_env(learning=on), store=store) for on in (False, True)}
        engines[True].research(QUESTION)  # warm: model, index, prompts
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(runs):
            for on in (False, True):
                t = time.perf_counter()
                engines[on].research(QUESTION, paradigm="bernard")  # same host: same work after
                times[on].append((time.perf_counter() - t) * 1000)
        off, on_ = statistics.median(times[False]), statistics.median(times[True])
        print(f"offline run, 1,000 ratings, median of {runs}: learning off {off:.0f} ms, "
              f"on {on_:.0f} ms, ratio {on_ / off:.3f}")
