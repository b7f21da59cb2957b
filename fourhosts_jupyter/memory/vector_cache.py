"""Precomputed embeddings shipped with the package, so the first run needs no model forward
for the texts every installation embeds identically.

Those texts are the bundled demo corpus (its passages as ingest cuts them, and their sentences as
the offline answer engine quotes them), the classifier's host exemplars and the relevance
check's background questions (context/relevance.py): about 1,100 texts
that took most of a cold first run (seconds of forward passes, and the torch import they
need). Rows are keyed by a hash of the exact text, for one model name; any other text is
embedded live. ``tests/test_vector_cache.py`` checks the rows against the live model and that
they cover the current corpus; rebuild with ``python -m fourhosts_jupyter.memory.vector_cache``.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

_FILE = "vectors/{model}.npz"
_lock = threading.Lock()
_loaded: dict[str, dict[bytes, np.ndarray] | None] = {}


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _path(model: str) -> Path:
    return Path(str(resources.files("fourhosts_jupyter.data"))) / _FILE.format(model=model)


def shipped(model: str) -> dict[bytes, np.ndarray] | None:
    """The shipped rows for ``model`` (text key → unit float32 row), or None if none ship."""
    if model not in _loaded:
        with _lock:
            if model not in _loaded:
                path = _path(model)
                if path.exists():
                    with np.load(path) as z:
                        keys, rows = z["keys"], z["vectors"].astype(np.float32)
                    _loaded[model] = {k.tobytes(): rows[i] for i, k in enumerate(keys)}
                else:
                    _loaded[model] = None
    return _loaded[model]


def cached_texts() -> list[str]:
    """Every text the cache should hold, computed from the current corpus, ingest and classifier."""
    from ..classifier import exemplars
    from ..context.relevance import background_questions
    from ..llm.offline import split_sentences
    from .embeddings import HashingEmbedder
    from .seed import ensure_seeded
    from .store import Store

    seen: list[str] = []

    class Recorder(HashingEmbedder):  # ingest's own cut of the corpus, without a model
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            seen.extend(texts)
            return super().embed(texts)

    with tempfile.TemporaryDirectory(prefix="fourhosts-cache-") as tmp:
        ensure_seeded(Store(Path(tmp) / "s.duckdb"), Recorder())
    texts = list(seen)
    for passage in seen:
        texts.extend(split_sentences(passage))
    texts.extend(q for qs in exemplars().values() for q in qs)
    texts.extend(background_questions())
    return list(dict.fromkeys(texts))


def build() -> Path:
    """Embed ``cached_texts()`` with the local model in float32 and write the shipped file."""
    from .embeddings import LOCAL_MODEL_NAME, LocalEmbedder

    texts = cached_texts()
    emb = LocalEmbedder(bf16=False)
    rows = emb.embed_live(texts)
    path = _path(LOCAL_MODEL_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    # raw bytes as uint8 rows: a bytes dtype ("S16") would drop a digest's trailing zero bytes
    keys = np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(-1, 16)
    np.savez_compressed(path, keys=keys, vectors=rows.astype(np.float32))
    with _lock:
        _loaded.pop(LOCAL_MODEL_NAME, None)
    return path


if __name__ == "__main__":
    print(build())
