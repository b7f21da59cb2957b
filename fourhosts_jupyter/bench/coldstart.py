"""Cold start: ``python -m fourhosts_jupyter.bench coldstart [--rounds N]``.

The first ``%%research`` in a fresh kernel, offline, on the demo corpus, with no model loaded
yet: the time from ``%load_ext`` to the last byte of the answer (goal: 3 s). Every round is a
fresh interpreter (nothing warm in memory; the OS file cache is warm after the first round, as
it is for an analyst who has run Python before), and the figures are medians over the rounds.

Two end-to-end cases: a **fresh home** (the store is empty, so the run seeds the bundled corpus
first: a newcomer's very first question) and a **seeded home** (the store already holds the
corpus: the second kernel, or Binder after ``postBuild``). The **breakdown** runs the same
steps one after another in one fresh interpreter, each timed on its own, to show where the time
goes; its steps do not overlap, so their sum can exceed the end-to-end figure when the run
overlaps them (the model loading in the background while the store is opened and seeded).
The baseline printed against is a bare ``python -c pass`` start measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"

# One fresh kernel's first cell: %load_ext, then %%research; prints seconds as JSON.
_END_TO_END = f"""
import json, time
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
ip = InteractiveShell.instance()
t0 = time.perf_counter()
ip.run_line_magic("load_ext", "fourhosts_jupyter")
t1 = time.perf_counter()
with capture_output() as cap:
    ip.run_cell_magic("research", "--save a", {QUESTION!r})
t2 = time.perf_counter()
a = ip.user_ns["a"]
assert a.text and a.sources, "no answer"
print(json.dumps({{"load_ext": t1 - t0, "total": t2 - t0, "sources": len(a.sources)}}))
"""

# The same work, step by step, each step timed alone (see the module docstring).
_BREAKDOWN = f"""
import json, os, time
T = {{}}
def step(name, t):
    T[name] = time.perf_counter() - t
    return time.perf_counter()
t = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t = time.perf_counter()
ip.run_line_magic("load_ext", "fourhosts_jupyter")
t = step("%load_ext", t)
from fourhosts_jupyter.memory import embeddings as E
emb = E.LocalEmbedder()
emb.embed([{QUESTION!r}])
t = step("first question embedded (encoder load + forward)", t)
from fourhosts_jupyter.memory.store import Store
from fourhosts_jupyter.memory.seed import ensure_seeded
store = Store(os.environ["FOURHOSTS_HOME"] + "/store.duckdb")
n = ensure_seeded(store, emb)
t = step(f"seeding the store ({{n}} passages)", t)
from fourhosts_jupyter.context.select import select
found = select(store, {QUESTION!r}, k=10, embedder=emb)
t = step("first select (FAISS + BM25 built)", t)
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.config import Settings
engine = Engine(Settings.from_env(store_path=store.path), store=store, embedder=emb)
a = engine.research({QUESTION!r})
t = step("the run: classify, select, offline answer, run log", t)
import sys
T["torch imported (1 = yes)"] = float("torch" in sys.modules)
print(json.dumps(T))
"""


def _python(code: str, home: str) -> dict[str, float]:
    env = {**os.environ, "FOURHOSTS_HOME": home, "HF_HUB_OFFLINE": "1", "FOURHOSTS_LIVE": "0"}
    for key in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        env.pop(key, None)  # offline: no provider
    env["FOURHOSTS_DOTENV"] = "0"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"a cold-start round failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _bare(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench coldstart")
    ap.add_argument("--rounds", type=int, default=5, help="fresh interpreters per figure (default 5)")
    args = ap.parse_args(argv)
    rounds = max(1, args.rounds)

    bare = _bare(rounds)
    with tempfile.TemporaryDirectory(prefix="fh-coldstart-") as tmp:
        # a seeded store to copy into each "seeded home" round (a run writes to its store)
        template = os.path.join(tmp, "template")
        os.makedirs(template)
        _python(_END_TO_END, template)

        def home(i: int, seeded: bool) -> str:
            path = os.path.join(tmp, f"{'seeded' if seeded else 'fresh'}-{i}")
            os.makedirs(path)
            if seeded:
                shutil.copyfile(os.path.join(template, "store.duckdb"), os.path.join(path, "store.duckdb"))
            return path

        fresh, seeded, steps = [], [], []
        for i in range(rounds):  # interleaved, so machine load hits every case alike
            fresh.append(_python(_END_TO_END, home(i, False)))
            seeded.append(_python(_END_TO_END, home(i, True)))
            steps.append(_python(_BREAKDOWN, home(100 + i, False)))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"cold start, medians of {rounds} fresh interpreters each (goal: total <= 3.0 s)")
    print(f"  python -c pass (baseline)                       {bare:7.3f} s")
    for name, rows in (("fresh home (seeds the corpus)", fresh), ("seeded home", seeded)):
        total = med(rows, "total")
        print(f"  {name:<34} %load_ext {med(rows, 'load_ext') * 1000:6.1f} ms"
              f"  total {total:6.3f} s  ratio to bare start {total / bare:5.1f}")
    print("breakdown (fresh home, steps timed one after another):")
    total = 0.0
    for key in steps[0]:
        v = statistics.median(s[key] for s in steps)
        total += v if "imported" not in key else 0.0
        print(f"  {key:<58} {v:7.3f} s")
    print(f"  {'sum of the steps':<58} {total:7.3f} s")
    return 0
