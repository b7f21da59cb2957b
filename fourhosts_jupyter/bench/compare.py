"""Compare: four hosts at once against each host alone, on the scripted server.

    python -m fourhosts_jupyter.bench compare [--rounds 5] [--first-ms 300] [--gap-ms 20]

The scripted server answers like a real model: first token after ``first-ms``, then a chunk
every ``gap-ms``; each host writes a different length (so one host is the slowest). Baseline
(same process, same rounds): each host's run alone, through the engine's sync twin. Figure:
the median wall time of a four-host comparison over the median of the slowest single-host run;
goal ≤ 1.3 (the hosts answer at the same time, not one after another).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

CHUNKS = {"dolores": 80, "teddy": 100, "bernard": 120, "maeve": 90}  # text chunks per host


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench compare")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--first-ms", type=float, default=300.0)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--hashing", action="store_true",
                    help="the hashing embedder instead of MiniLM: leaves out the CPU-bound stages' "
                    "cost, to see the concurrency of the model stage alone")
    a = ap.parse_args(argv)

    from ..comparison import CompareFinished, stream_compare
    from ..config import Settings
    from ..engine import Engine
    from ..memory.seed import ensure_seeded
    from ..memory.store import Store
    from ..paradigms import HOSTS
    from ..testing import RecordedRequest, Reply, ScriptedServer

    def respond(req: RecordedRequest) -> Reply:
        system = req.messages[0]["content"] if req.messages else ""
        found = re.search(r"the (DOLORES|TEDDY|BERNARD|MAEVE) paradigm", system)
        host = found.group(1).lower() if found else "bernard"
        n = CHUNKS[host]
        return Reply.say("Lower speeds save lives [1]. " * n, chunks=n,
                         first_delay=a.first_ms / 1000, delay=a.gap_ms / 1000)  # fmt: skip

    question = "How should a mid-size city cut traffic deaths in half within five years?"
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(responder=respond) as server:
        store = Store(Path(tmp) / "store.duckdb")
        from ..memory.embeddings import HashingEmbedder

        engine = Engine(Settings(base_url=server.base_url, model="scripted-model", max_retries=0),
                        store=store, tools=False, embedder=HashingEmbedder() if a.hashing else None)  # fmt: skip
        ensure_seeded(store, engine.embedder)
        engine.research(question, paradigm="bernard")  # warm: indexes, model, client

        singles: dict[str, list[float]] = {h.value: [] for h in HOSTS}
        cpu_singles: dict[str, list[float]] = {h.value: [] for h in HOSTS}
        walls: list[float] = []
        cpus: list[float] = []  # process CPU seconds (all threads): load distorts it less
        for _ in range(a.rounds):
            for h in HOSTS:
                t, c = time.perf_counter(), time.process_time()
                engine.research(question, paradigm=h)
                singles[h.value].append(time.perf_counter() - t)
                cpu_singles[h.value].append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            done = [e for e in stream_compare(engine, question) if isinstance(e, CompareFinished)]
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            assert done and len(done[0].comparison.answers) == 4, "a host failed"

    med = {h: statistics.median(v) for h, v in singles.items()}
    slowest = max(med, key=med.__getitem__)
    wall = statistics.median(walls)
    print(f"scripted server: first token {a.first_ms:.0f} ms, {a.gap_ms:.0f} ms between chunks; "
          f"chunks per host {CHUNKS}; {a.rounds} rounds (medians); embedder "
          f"{'hashing' if a.hashing else 'MiniLM'}")  # fmt: skip
    for h, v in med.items():
        print(f"  {h:<8} alone: {v:6.3f} s")
    print(f"  sum of the four alone:        {sum(med.values()):6.3f} s")
    print(f"  compare, four hosts at once:  {wall:6.3f} s")
    print(f"ratio compare / slowest single ({slowest}): {wall / med[slowest]:.3f}  (goal ≤ 1.3)")
    print(f"ratio compare / sum of singles: {wall / sum(med.values()):.3f}")
    cpu_med = {h: statistics.median(v) for h, v in cpu_singles.items()}
    cpu = statistics.median(cpus)
    print(f"CPU: compare {cpu:.3f} s, the four alone {sum(cpu_med.values()):.3f} s "
          f"({', '.join(f'{h} {v:.3f}' for h, v in cpu_med.items())}); "
          f"ratio compare / sum of singles: {cpu / sum(cpu_med.values()):.3f}")
    return 0
