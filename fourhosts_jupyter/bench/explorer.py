"""Explorer benchmark: warm classification per debounced update, p50 / p95.

    python -m fourhosts_jupyter.bench explorer [--questions N]

An analyst typing pauses at word ends; each pause past the debounce is one update with a new
text (so the question cache never answers). Each update here is what the debounced callback
does: ``classify`` of the box's text (timed alone: the target is ≤ 50 ms p95) and then the whole
redraw (explain + bar + why table HTML). Baseline in the same process: one embedding of the same
text (the model's forward pass, the floor under any embedding classifier), and the keyword rules.
Prints the machine's load average: on a shared 2-core machine it moves the tail.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
DATA = _REPO / "tests" / "data"


def _texts(n_questions: int) -> list[str]:
    rows = [json.loads(x) for x in (DATA / "classify_labelled.jsonl").read_text("utf-8").splitlines()
            if x.strip()]  # fmt: skip
    two = [json.loads(x) for x in
           (DATA / "classifier_two_intent_heldout.jsonl").read_text("utf-8").splitlines()
           if x.strip()]  # fmt: skip
    questions = [r["question"] for r in rows if r["split"] == "heldout"][: n_questions // 2]
    questions += [r["question"] for r in two][: n_questions - len(questions)]
    updates = []
    for q in questions:
        words = q.split()
        # a pause every 3 words, and at the end: several updates per question
        updates += [" ".join(words[:i]) for i in range(3, len(words), 3)] + [q]
    return updates


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench explorer")
    ap.add_argument("--questions", type=int, default=40, help="questions typed (default 40)")
    args = ap.parse_args(argv)

    from ..classifier import keyword_probabilities
    from ..jupyter.explorer import Explorer
    from ..memory.embeddings import LocalEmbedder

    emb = LocalEmbedder()
    ex = Explorer(embedder=emb)
    ex.widget()
    for warm in ("warm up the model", "and the exemplars", "and the question cache please"):
        ex.text = warm  # loads the encoder, embeds (or loads) the exemplars
    updates = _texts(args.questions)
    ex.update_ms.clear()
    full_ms, embed_ms, kw_ms = [], [], []
    for i, text in enumerate(updates):
        ex.text_box.value = text  # what the browser sends; the debounce timer is bypassed:
        ex._debouncer.cancel()
        t0 = time.perf_counter()
        ex._typed()  # ... this is the callback it would run
        full_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        emb.embed([f"{text} ({i})"])  # fresh text: a real forward pass
        embed_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        keyword_probabilities(text)
        kw_ms.append((time.perf_counter() - t0) * 1000)
    cls = ex.update_ms
    load = os.getloadavg()
    print(f"explorer updates: {len(cls)} (from {args.questions} questions typed, a pause every "
          f"3 words); load average {load[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"  classify per update:      p50 {statistics.median(cls):6.1f} ms  "
          f"p95 {_pct(cls, 0.95):6.1f} ms  (target p95 ≤ 50 ms)")
    print(f"  whole update (+explain, bar and why HTML): p50 {statistics.median(full_ms):6.1f} ms"
          f"  p95 {_pct(full_ms, 0.95):6.1f} ms")
    print(f"  baseline, one embedding:  p50 {statistics.median(embed_ms):6.1f} ms  "
          f"p95 {_pct(embed_ms, 0.95):6.1f} ms  → classify / embedding p50 "
          f"{statistics.median(cls) / statistics.median(embed_ms):.2f}x")
    print(f"  baseline, keyword rules:  p50 {statistics.median(kw_ms):6.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
