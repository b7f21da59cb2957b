"""Does confidence rank good evidence above bad? AUC on a labelled retrieval set.

For each labelled query, two answers are composed by the offline engine: one over the
query's relevant passages, one over the same number of passages that are not relevant —
the ones most similar to the query (hard negatives: on a neighbouring topic) or drawn at
random. The AUC is the chance that a relevant-source answer gets the higher confidence
(ties count half): 0.5 is a coin, 1.0 a perfect ranking.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from ..events import Source


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Mann–Whitney AUC: P(positive > negative) + ½ P(tie)."""
    if not positives or not negatives:
        raise ValueError("AUC needs at least one positive and one negative score")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


@dataclass(frozen=True)
class Scored:
    query_id: str
    relevant: bool
    confidence: float
    parts: str


@dataclass(frozen=True)
class ConfidenceAUC:
    negatives: str  # hard | random
    auc: float
    scored: tuple[Scored, ...]

    @property
    def mean_relevant(self) -> float:
        xs = [s.confidence for s in self.scored if s.relevant]
        return sum(xs) / len(xs)

    @property
    def mean_irrelevant(self) -> float:
        xs = [s.confidence for s in self.scored if not s.relevant]
        return sum(xs) / len(xs)


def confidence_auc(
    corpus: Sequence[dict[str, Any]], queries: Sequence[dict[str, Any]], *, embedder: Any,
    negatives: str = "hard", seed: int = 13, use_relevance: bool = True,
) -> ConfidenceAUC:
    """Compose and evaluate two answers per query (see the module docstring)."""
    import numpy as np

    from ..classifier import classify
    from ..llm.base import ModelRequest
    from ..llm.offline import OfflineProvider
    from .checks import evaluate_offline

    docs = {d["_id"]: d for d in corpus}
    ids = list(docs)
    doc_vecs = embedder.embed([f"{docs[i].get('title', '')}\n{docs[i]['text']}" for i in ids])
    engine = OfflineProvider(embedder)
    rng = random.Random(seed)
    scored: list[Scored] = []
    for q in queries:
        relevant = [r for r in (q["relevant"] if isinstance(q["relevant"], list) else list(q["relevant"])) if r in docs]
        if not relevant:
            continue
        others = [i for i in ids if i not in relevant]
        if negatives == "hard":
            sims = doc_vecs @ embedder.embed([q["text"]])[0]
            order = [ids[j] for j in np.argsort(-sims)]
            wrong = [i for i in order if i not in relevant][: len(relevant)]
        else:
            wrong = rng.sample(others, len(relevant))
        c = classify(q["text"], embedder=embedder)
        for is_relevant, chosen in ((True, relevant), (False, wrong)):
            sources = tuple(
                Source(n=k, id=i, title=docs[i].get("title", i), text=docs[i]["text"])
                for k, i in enumerate(chosen, 1)
            )
            text = engine.compose(ModelRequest(messages=[], question=q["text"], classification=c, sources=sources))
            ev = evaluate_offline(q["text"], text, sources, embedder=embedder if use_relevance else None)
            scored.append(Scored(q["_id"], is_relevant, ev.confidence, ev.parts()))
    pos = [s.confidence for s in scored if s.relevant]
    neg = [s.confidence for s in scored if not s.relevant]
    return ConfidenceAUC(negatives, auc(pos, neg), tuple(scored))
