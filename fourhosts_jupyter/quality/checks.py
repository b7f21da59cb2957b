"""The offline evaluation: measurable checks of an answer against the sources it cites.

- every ``[n]`` names a listed source;
- each cited claim shares most of its content words with a passage it cites (support);
- the question's key terms appear in the cited claims (coverage);
- the cited passages are about the question (embedding similarity, when an embedder is given);
- length, and the number of distinct sources cited.

Confidence is computed from these, so it falls when the evidence is thin or off the question:
``support × valid share × (0.45 coverage + 0.35 relevance + 0.1 sources + 0.1 length)``.
An answer that cites nothing gets 0.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..events import Source
from .evaluation import Evaluation, Metric

_CITE = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*])|\n+")
_WORD = re.compile(r"[a-z][a-z'-]+")
# the offline engine's own words: its lead and its "words the evidence does not mention" note
# "… a claim. [2] Next claim": a citation after the full stop belongs to the sentence before it
_CITE_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d{1,3}\])+)")
_ASIDE = re.compile(r"^\s*\*[^*].*\*\s*$")
_STOP = frozenset(
    "a an and are as at be by can could did do does for from has have how i in is it its of on "
    "or our should so than that the their them these they this to was we were what when where "
    "which who why will with within would you your into about over more most not but all any "
    "also just very much many some such each other only then there here been being one two".split()
)
SUPPORT_SHARE = 0.5  # a claim is supported when a cited passage holds this share of its words
SOURCES_FULL = 3  # distinct sources for the full sources part
LENGTH_RANGE = (200, 6000)  # characters for the full length part
# cosine of MiniLM question ↔ passage: below LOW unrelated, above HIGH plainly on topic
RELEVANCE_LOW, RELEVANCE_HIGH = 0.15, 0.55
# a passage found by another angle joins the evidence only this close to the question itself
ON_TOPIC = 0.3


def terms(text: str) -> set[str]:
    """Content words, cut to a crude stem so 'protects' meets 'protection'."""
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def claims(answer: str) -> list[tuple[str, list[int]]]:
    """(claim text without its markers, cited numbers) for each sentence that cites a source."""
    out = []
    for line in answer.splitlines():
        if _ASIDE.match(line):
            continue
        for sentence in _SENTENCE.split(_CITE_AFTER_STOP.sub(r"\2\1", line)):
            cited = [int(n) for n in _CITE.findall(sentence)]
            if cited:
                out.append((_CITE.sub("", sentence).strip(), cited))
    return out


def evaluate_offline(
    question: str, answer: str, sources: Sequence[Source], *, embedder: Any = None
) -> Evaluation:
    by_n = {s.n: s for s in sources}
    found = claims(answer)
    cites = [n for _, ns in found for n in ns]
    valid = [n for n in cites if n in by_n]
    supported = 0
    covered: set[str] = set()
    for text, ns in found:
        words = terms(text)
        if not words:
            continue
        best = max((len(words & terms(by_n[n].text)) / len(words) for n in ns if n in by_n), default=0.0)
        if best >= SUPPORT_SHARE:
            supported += 1
            covered |= words
    key = terms(question)
    hit = key & covered
    cited_sources = sorted(set(valid))
    relevance = _relevance(question, [by_n[n] for n in cited_sources], embedder) if embedder else None
    chars = len(answer.strip())

    n_claims = len(found)
    support = supported / n_claims if n_claims else 0.0
    validity = len(valid) / len(cites) if cites else 0.0
    coverage = len(hit) / len(key) if key else 1.0
    rel = relevance if relevance is not None else coverage
    lo, hi = LENGTH_RANGE
    length = 1.0 if lo <= chars <= hi else (chars / lo if chars < lo else hi / chars)
    spread = min(len(cited_sources), SOURCES_FULL) / SOURCES_FULL
    confidence = support * validity * (0.45 * coverage + 0.35 * rel + 0.1 * spread + 0.1 * length)
    metrics = (
        Metric("support", round(support, 3), f"{supported} of {n_claims} cited claims match their passage"),
        Metric("citations", round(validity, 3), f"{len(valid)} of {len(cites)} citations name a listed source"),
        Metric("key_terms", round(coverage, 3), f"{len(hit)} of {len(key)} key terms of the question covered"),
    )
    return Evaluation(
        confidence=round(min(1.0, max(0.0, confidence)), 3),
        claims=n_claims,
        supported=supported,
        citations=len(cites),
        valid_citations=len(valid),
        sources_cited=len(cited_sources),
        key_terms=len(key),
        key_terms_covered=len(hit),
        relevance=None if relevance is None else round(relevance, 3),
        chars=chars,
        metrics=metrics,
    )


def _relevance(question: str, cited: Sequence[Source], embedder: Any) -> float:
    """Mean similarity of the question to each cited passage, scaled to 0–1."""
    if not cited:
        return 0.0
    vecs = embedder.embed([question] + [s.text for s in cited])
    sims = vecs[1:] @ vecs[0]
    scaled = [(float(x) - RELEVANCE_LOW) / (RELEVANCE_HIGH - RELEVANCE_LOW) for x in sims]
    return sum(min(1.0, max(0.0, x)) for x in scaled) / len(scaled)


def on_topic(question: str, sources: Sequence[Source], embedder: Any, floor: float = ON_TOPIC) -> list[Source]:
    """The sources whose passage is about the question (cosine ≥ ``floor``): what an extra
    retrieval angle brings in must still answer the question, not the angle's words."""
    if not sources:
        return []
    vecs = embedder.embed([question] + [s.text for s in sources])
    sims = vecs[1:] @ vecs[0]
    return [s for s, x in zip(sources, sims) if float(x) >= floor]
