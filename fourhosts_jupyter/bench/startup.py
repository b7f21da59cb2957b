"""Start-up and the offline answer: ``python -m fourhosts_jupyter.bench startup``.

- cold ``import fourhosts_jupyter`` and ``%load_ext`` in fresh processes, against a bare
  interpreter start measured in the same run;
- an offline answer for a question over a store with a few hundred memories, after the model
  is warm, against the select step alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _proc_seconds(code: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def _in_process(code: str, runs: int) -> list[float]:
    """Time ``code`` inside fresh interpreters, excluding the interpreter's own start."""
    wrapped = (
        "import time; t = time.perf_counter()\n" + code + "\nprint(time.perf_counter() - t)"
    )
    out = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", wrapped], check=True, capture_output=True, text=True)
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench startup")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--memories", type=int, default=300)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    bare = statistics.median(_proc_seconds("pass", args.runs))
    whole = statistics.median(_proc_seconds("import fourhosts_jupyter", args.runs))
    imp = statistics.median(_in_process("import fourhosts_jupyter", args.runs))
    ipy = statistics.median(
        _in_process(
            "from IPython.core.interactiveshell import InteractiveShell\nip = InteractiveShell.instance()",
            args.runs,
        )
    )
    load = statistics.median(
        _in_process(
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\n"
            "ip.run_line_magic('load_ext', 'fourhosts_jupyter')",
            args.runs,
        )
    )
    print(f"python -c pass                 {bare * 1000:8.1f} ms  (baseline)")
    print(f"python -c 'import fourhosts…'  {whole * 1000:8.1f} ms  ratio {whole / bare:.2f}")
    print(f"import fourhosts_jupyter       {imp * 1000:8.1f} ms  (in process, cold)")
    print(f"IPython shell alone            {ipy * 1000:8.1f} ms")
    print(f"shell + %load_ext              {load * 1000:8.1f} ms  → %load_ext itself {max(0.0, load - ipy) * 1000:.1f} ms")

    from ..context.select import select
    from ..engine import Engine
    from ..config import Settings
    from ..memory.embeddings import get_embedder
    from ..memory.seed import ensure_seeded
    from ..memory.store import MemoryRecord, Store, new_id

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "bench.duckdb"))
        t = time.perf_counter()
        emb = get_embedder()
        warm_model = time.perf_counter() - t
        seeded = ensure_seeded(store, emb)
        extra = max(0, args.memories - seeded)
        topics = ["speed limits", "bus lanes", "school streets", "street lighting", "crash data", "budgets"]
        texts = [
            f"Note {i}: residents raised {topics[i % len(topics)]} at meeting {i}; the team logged it "
            f"for review and agreed a follow-up with the ward office."
            for i in range(extra)
        ]
        store.add_memories(
            [MemoryRecord(new_id("m_"), "shared", "episodic", t_, "note", title=f"note {i}") for i, t_ in enumerate(texts)],
            emb.embed(texts),
            model=emb.name,
        )
        engine = Engine(Settings.from_env(store_path=store.path), store=store, embedder=emb)
        q = "How should a mid-size city cut traffic deaths in half within five years?"
        engine.research(q)  # warm: classifier prototypes, index, caches
        answers, selects = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            engine.research(q)
            answers.append(time.perf_counter() - t)
            t = time.perf_counter()
            select(store, q, k=10, embedder=emb)
            selects.append(time.perf_counter() - t)
        n = store.count_memories()
        a, s = statistics.median(answers), statistics.median(selects)
        print(f"embedding model load (cold)    {warm_model * 1000:8.1f} ms")
        print(f"offline answer, {n} memories  {a * 1000:8.1f} ms  (warm, median of {args.runs}; goal < 2000 ms)")
        print(f"select alone                   {s * 1000:8.1f} ms  → answer/select ratio {a / s:.1f}")
    return 0
