"""The shipped vectors: they cover what the first run embeds, and equal the live model's."""

from __future__ import annotations

import numpy as np

from fourhosts_jupyter.memory import vector_cache as V
from fourhosts_jupyter.memory.embeddings import LOCAL_MODEL_NAME, LocalEmbedder
from fourhosts_jupyter.memory.seed import ensure_seeded
from fourhosts_jupyter.memory.store import Store


def test_the_shipped_vectors_cover_the_current_corpus_and_exemplars():
    shipped = V.shipped(LOCAL_MODEL_NAME)
    missing = [t[:60] for t in V.cached_texts() if V.text_key(t) not in shipped]
    # stale after a change to the corpus, ingest's chunking or the exemplars: rebuild with
    # python -m fourhosts_jupyter.memory.vector_cache
    assert missing == []
    assert V.shipped("some-other-model") is None  # keyed by model: never mixed


def test_the_shipped_vectors_equal_the_live_model():
    texts = V.cached_texts()
    sample = texts[:: max(1, len(texts) // 150)]  # passages, sentences and exemplars alike
    shipped = V.shipped(LOCAL_MODEL_NAME)
    cached = np.stack([shipped[V.text_key(t)] for t in sample])
    live = LocalEmbedder(bf16=False, numpy_max=0).embed_live(sample)
    assert cached.dtype == np.float32 and np.abs(cached - live).max() < 1e-5


def test_seeding_the_demo_corpus_needs_no_model(tmp_path):
    emb = LocalEmbedder()
    assert ensure_seeded(Store(tmp_path / "s.duckdb"), emb) > 0
    assert emb._model is None  # every passage came from the shipped vectors
