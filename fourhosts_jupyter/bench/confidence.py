"""Does confidence rank answers over relevant sources above answers over irrelevant ones?

    python -m fourhosts_jupyter.bench confidence [--limit N] [--no-relevance]

On the labelled retrieval set (tests/data/retrieval_corpus.jsonl + retrieval_queries.jsonl,
and the held-out BEIR set tests/data/retrieval_heldout when present), each query gets two
offline answers: one over its relevant passages, one over as many irrelevant passages —
``hard`` (the most similar irrelevant ones) and ``random``. Prints the AUC of the confidence
(quality/auc.py) and the mean confidence of each side; the baseline is the same checks without
the embedding relevance part (lexical evidence only). Deterministic: one pass is the measurement.

Measured 2026-11-30 (MiniLM, float32): AUC labelled hard 0.902 (lexical only 0.866), random
0.977 (0.973); held-out hard 0.944 (0.886), random 1.000 (0.999). Mean confidence over relevant
vs irrelevant sources: labelled 0.71 vs 0.36 (hard) / 0.04 (random); held-out 0.68 vs 0.33 / 0.003.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def _sets(limit: int | None) -> list[tuple[str, list, list]]:
    from ..memory.evaluate import load_beir, load_queries

    out = [("labelled", load_queries(_REPO / "tests/data/retrieval_corpus.jsonl"),
            load_queries(_REPO / "tests/data/retrieval_queries.jsonl"))]
    held = _REPO / "tests/data/retrieval_heldout"
    if held.is_dir():
        corpus, queries = load_beir(held)
        out.append(("held-out", load_queries(corpus), queries))
    return [(n, c, q[:limit] if limit else q) for n, c, q in out]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench confidence")
    ap.add_argument("--limit", type=int, default=None, help="first N queries of each set")
    ap.add_argument("--no-relevance", action="store_true", help="skip the lexical-only baseline")
    ap.add_argument("--set", choices=("labelled", "held-out"), help="only this set")
    args = ap.parse_args(argv)

    from ..memory.embeddings import get_embedder
    from ..quality.auc import confidence_auc, labelled_answers

    embedder = get_embedder()
    print(f"embedder {embedder.name}")
    print(f"{'set':10} {'negatives':9} {'checks':22} {'AUC':>6} {'mean rel':>9} {'mean irr':>9} {'s':>6}")
    for name, corpus, queries in _sets(args.limit):
        if args.set and name != args.set:
            continue
        for negatives in ("hard", "random"):
            t = time.perf_counter()
            answers = labelled_answers(corpus, queries, embedder=embedder, negatives=negatives)
            print(f"{name:10} {negatives:9} {len(answers)} answers composed in {time.perf_counter() - t:.1f} s")
            variants = [("with relevance", True)] + ([] if args.no_relevance else [("lexical only (base)", False)])
            aucs = []
            for label, rel in variants:
                t = time.perf_counter()
                r = confidence_auc(answers, embedder=embedder if rel else None, negatives=negatives)
                aucs.append(r.auc)
                print(f"{name:10} {negatives:9} {label:22} {r.auc:6.3f} {r.mean_relevant:9.3f} "
                      f"{r.mean_irrelevant:9.3f} {time.perf_counter() - t:6.1f}", flush=True)
            if len(aucs) == 2:
                print(f"{'':10} {'':9} {'ratio AUC (rel/base)':22} {aucs[0] / aucs[1]:6.3f}")
    return 0
