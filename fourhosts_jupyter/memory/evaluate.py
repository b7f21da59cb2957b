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


def load_beir(directory: str | Path, split: str = "test",
              qrels: str | Path | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """(corpus path, labelled queries) of a BEIR-layout directory: ``corpus.jsonl``,
    ``queries.jsonl`` and ``qrels/<split>.tsv`` (or the judgements file ``qrels``).
    ``relevant`` maps corpus id to its grade (grades of 0 are judged non-relevant and dropped),
    ``judged`` holds every corpus id judged either way; queries without a relevant document are
    left out, as BEIR's evaluation does."""
    from ..errors import ConfigError

    d = Path(directory)
    corpus, queries = d / "corpus.jsonl", d / "queries.jsonl"
    given, qrels = qrels is not None, Path(qrels) if qrels else d / "qrels" / f"{split}.tsv"
    missing = [str(p) if given and p == qrels else p.name for p in (corpus, queries, qrels)
               if not p.is_file()]
    if missing:
        raise ConfigError(f"{d} is not a BEIR directory (missing {', '.join(missing)}): it needs "
                          f"corpus.jsonl, queries.jsonl and qrels/{split}.tsv (or --qrels FILE)")
    grades: dict[str, dict[str, float]] = {}
    judged: dict[str, set[str]] = {}  # every document judged, relevant or not (pooling's reach)
    with open(qrels, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            judged.setdefault(parts[0], set()).add(parts[1])
            if float(parts[2]) > 0:
                grades.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    out = [dict(q, relevant=grades[q["_id"]], judged=judged[q["_id"]]) for q in load_queries(queries)
           if q["_id"] in grades]
    if not out:
        raise ConfigError(f"{qrels} judges no query as having a relevant document: nothing to measure")
    return corpus, out


def evaluate(store: Any, queries: list[dict[str, Any]], mode: str = "hybrid", *, embedder: Any = None,
             k: int = 10, **search_kwargs: Any) -> Quality:
    """Mean nDCG@k / recall@k of ``search`` in ``mode`` over labelled queries."""
    from ..context.select import search

    per: dict[str, float] = {}
    rec = []
    for q in queries:
        hits = search(store, q["text"], k=k, mode=mode, embedder=embedder, **search_kwargs)
        ranked = [h.to_json()["id"] for h in hits]
        rel = q["relevant"]  # a list of ids, or {id: grade}
        per[q["_id"]] = ndcg_at_k(ranked, rel if isinstance(rel, dict) else set(rel), k)
        rec.append(recall_at_k(ranked, set(rel), k))
    n = max(len(queries), 1)
    return Quality(mode, sum(per.values()) / n, sum(rec) / n, per)
