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


@dataclass(frozen=True)
class Composed:
    query_id: str
    relevant: bool
    question: str
    text: str
    sources: tuple[Source, ...]


def labelled_answers(
    corpus: Sequence[dict[str, Any]], queries: Sequence[dict[str, Any]], *, embedder: Any,
    negatives: str = "hard", seed: int = 13,
) -> list[Composed]:
    """Two offline answers per labelled query (see the module docstring)."""
    import numpy as np

    from ..classifier import classify
    from ..llm.base import ModelRequest
    from ..llm.offline import OfflineProvider

    docs = {d["_id"]: d for d in corpus}
    ids = list(docs)
    doc_vecs = embedder.embed([f"{docs[i].get('title', '')}\n{docs[i]['text']}" for i in ids])
    engine = OfflineProvider(embedder)
    rng = random.Random(seed)
    out: list[Composed] = []
    for q in queries:
        relevant = [r for r in q["relevant"] if r in docs]  # a list of ids, or {id: grade}
        if not relevant:
            continue
        if negatives == "hard":
            sims = doc_vecs @ embedder.embed([q["text"]])[0]
            wrong = [ids[j] for j in np.argsort(-sims) if ids[j] not in relevant][: len(relevant)]
        else:
            wrong = rng.sample([i for i in ids if i not in relevant], len(relevant))
        c = classify(q["text"], embedder=embedder)
        for is_relevant, chosen in ((True, relevant), (False, wrong)):
            sources = tuple(
                Source(n=k, id=i, title=docs[i].get("title", i), text=docs[i]["text"])
                for k, i in enumerate(chosen, 1)
            )
            text = engine.compose(ModelRequest(messages=[], question=q["text"], classification=c, sources=sources))
            out.append(Composed(q["_id"], is_relevant, q["text"], text, sources))
    return out


def confidence_auc(answers: Sequence[Composed], *, embedder: Any = None, negatives: str = "hard") -> ConfidenceAUC:
    """Evaluate each answer offline (with the embedding relevance part when ``embedder`` is
    given) and take the AUC of its confidence, relevant-source answers as the positives."""
    from .checks import evaluate_offline

    scored = []
    for a in answers:
        ev = evaluate_offline(a.question, a.text, a.sources, embedder=embedder)
        scored.append(Scored(a.query_id, a.relevant, ev.confidence, ev.parts()))
    pos = [s.confidence for s in scored if s.relevant]
    neg = [s.confidence for s in scored if not s.relevant]
    return ConfidenceAUC(negatives, auc(pos, neg), tuple(scored))
