"""Anchor words: the words of a question an embedding cannot match, found by their letters.

A sentence vector blurs numbers, codes and identifiers: "NCT05518823" comes out as "a trial",
"412 doses" as "some doses", so the dense list ranks documents about the same subject first and
the one holding the identifier lower (on the identifier lookups of a held-out set, dense
nDCG@10 0.703 where BM25 reached 1.000, and the 0.8/0.2 fusion 0.813). BM25 matches the
letters exactly. A word is an anchor when

- it holds a digit (figures, years, codes) or the model's tokenizer can only spell it out
  (``readability``: an acronym or code it never learned), and
- it is rare in the store: in at most ``max(3, 1 %)`` of the passages, so that it singles out a
  few documents ("2024" in half of them anchors nothing).

``search`` (hybrid) then ranks the documents holding more of the question's anchors first, in
fused order within each tier: an analyst who types an identifier wants the document that has
it. A question without anchors is ranked exactly as before. A hit holding a *code* (letters
with digits, or a spelled-out word; not a bare number, which unrelated texts hold too) also
passes select's relevance test: the store holds the very thing asked for.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence, TypeVar

_DIGIT = re.compile(r"\d")
RARE_SHARE = 0.01  # of the store's passages
RARE_MIN = 3  # passages: a small store still has anchors

T = TypeVar("T")


def anchor_words(embedder: Any, query: str) -> list[str]:
    """The query's words that hold a digit or that the model can only spell out (stop words
    excluded), as typed: each keyword index tokenises them its own way."""
    from .keyword import _WORD, STOPWORDS
    from .readability import spelled_words

    spelled = {w for w, s in spelled_words(embedder, query) or () if s}  # the question's own pass
    return [w for w in dict.fromkeys(_WORD.findall(query))
            if w.lower() not in STOPWORDS and (_DIGIT.search(w) or w in spelled)]


def is_code(word: str) -> bool:
    """An anchor that names one thing: letters with digits ("NCT05518823", "L2") or a word the
    model can only spell out ("JWST"); a bare number ("2024", "72") is only a figure, which
    many unrelated texts hold."""
    return not word.isdigit()


def anchor_postings(keyword: Any, embedder: Any, query: str) -> dict[str, set[int]]:
    """Each rare anchor word of ``query`` -> the passage keys holding it (empty: the query has
    none, and ranking stays as it was). ``keyword`` is the store's keyword index (its
    ``passages()`` and ``holding(word, limit)``)."""
    words = anchor_words(embedder, query) if keyword is not None else []
    if not words:
        return {}
    limit = max(RARE_MIN, int(RARE_SHARE * keyword.passages()))
    out = {}
    for w in words:
        keys = keyword.holding(w, limit)
        if keys:
            out[w] = keys
    return out


def held(items: Sequence[T], keys_of: Callable[[T], Iterable[int]],
         anchors: dict[str, set[int]]) -> list[list[str]]:
    """For each item (a document, by the passage keys retrieved for it), the anchors it holds."""
    out = []
    for it in items:
        keys = set(keys_of(it))
        out.append([w for w, a in anchors.items() if keys & a])
    return out


def promote(items: Sequence[T], words: Sequence[Sequence[str]]) -> list[T]:
    """``items`` (fused order) with those holding more anchors (``words``: ``held``'s answer
    for them) first; stable within a tier."""
    return [it for _, it in sorted(zip(words, items), key=lambda t: -len(t[0]))]
