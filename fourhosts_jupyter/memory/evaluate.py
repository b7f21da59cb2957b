"""Retrieval quality on a labelled set: nDCG@k and recall@k per search mode.

The labelled set is a JSONL corpus (``_id``, ``title``, ``text``) and JSONL queries (``_id``,
``text``, ``relevant``: list of corpus ids), the shape of BEIR. Used by the tests, the
benchmark, and ``fourhosts search --queries`` users who want the same numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


def ndcg_at_k(ranked: Sequence[str], relevant: set[str] | dict[str, float], k: int = 10) -> float:
    """Binary (or graded, from a dict) nDCG@k of one ranked id list."""
    gains = relevant if isinstance(relevant, dict) else {r: 1.0 for r in relevant}
    dcg = sum(gains.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


@dataclass(frozen=True)
class Quality:
    mode: str
    ndcg10: float
    recall10: float
    per_query: dict[str, float]


def load_queries(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(store: Any, queries: list[dict[str, Any]], mode: str = "hybrid", *, embedder: Any = None,
             k: int = 10, **search_kwargs: Any) -> Quality:
    """Mean nDCG@k / recall@k of ``search`` in ``mode`` over labelled queries."""
    from ..context.select import search

    per: dict[str, float] = {}
    rec = []
    for q in queries:
        hits = search(store, q["text"], k=k, mode=mode, embedder=embedder, **search_kwargs)
        ranked = [h.to_json()["id"] for h in hits]
        rel = set(q["relevant"])
        per[q["_id"]] = ndcg_at_k(ranked, rel, k)
        rec.append(recall_at_k(ranked, rel, k))
    n = max(len(queries), 1)
    return Quality(mode, sum(per.values()) / n, sum(rec) / n, per)
