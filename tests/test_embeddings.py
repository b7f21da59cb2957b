"""Embedding tiers: hashing, the local model (and its bf16 decision), OpenAI over loopback HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import numpy as np
import openai
import pytest

from fourhosts_jupyter.context.select import search
from fourhosts_jupyter.context.write import write_memory
from fourhosts_jupyter.errors import ConfigError, ProviderAuthError, ProviderRateLimited
from fourhosts_jupyter.memory import embeddings as E


def test_hashing_embedder_is_deterministic_and_normalised():
    h = E.HashingEmbedder()
    a = h.embed(["Speed cameras reduce crashes", "Trees cool streets"])
    b = h.embed(["Speed cameras reduce crashes"])
    assert a.shape == (2, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1) and np.allclose(a[0], b[0])
    assert h.embed([]).shape == (0, 384)


def test_local_model_ranks_paraphrases_first():
    emb = E.get_embedder()
    assert emb.name == E.LOCAL_MODEL_NAME and E.embedder_status()["tier"] == "local"
    v = emb.embed(["How can a city reduce road deaths?",
                   "Lower speed limits cut traffic fatalities in towns.",
                   "Sourdough needs a lively starter."])
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_bf16_is_used_only_on_cpus_with_native_bf16():
    with open("/proc/cpuinfo") as fh:
        flags = next(line for line in fh if line.startswith("flags")).split()
    native = bool({"amx_bf16", "avx512_bf16"} & set(flags))
    assert E.cpu_has_native_bf16() is native
    emb = E.get_embedder()
    emb.model  # the torch model, where the choice is made (a question alone goes through NumPy)
    if native:
        assert emb.bf16_active == ("unchanged" in emb.bf16_reason)
    else:
        assert not emb.bf16_active and "no native bf16" in emb.bf16_reason


def test_forced_bf16_keeps_the_probe_rankings():
    fp32 = E.LocalEmbedder(bf16=False, numpy_max=0)  # numpy_max=0: torch for every batch
    bf16 = E.LocalEmbedder(bf16=True, numpy_max=0)
    q = ["traffic deaths in cities", "pricing for software firms"]
    d = list(E._PROBE_PASSAGES)
    r32 = np.argsort(-(fp32.embed(q) @ fp32.embed(d).T), axis=1)[:, :2]
    r16 = np.argsort(-(bf16.embed(q) @ bf16.embed(d).T), axis=1)[:, :2]
    assert bf16.bf16_active and np.array_equal(r32, r16)


def test_bf16_vectors_are_unit_length_in_float32():
    # bf16 forced on, whatever this CPU has: the model's own normalisation is rounded to bf16
    emb = E.LocalEmbedder(bf16=True, numpy_max=0)
    v = emb.embed(["How can a city reduce road deaths?", "Trees cool streets in summer.",
                   "Subscription businesses compete on switching costs and price tiers.", "x"])
    assert emb.bf16_active and v.dtype == np.float32
    assert np.abs(np.linalg.norm(v.astype(np.float64), axis=1) - 1).max() < 1e-6


@pytest.mark.parametrize("native", [True, False])
def test_automatic_bf16_choice_on_either_kind_of_cpu(monkeypatch, native):
    # both CPU-dependent paths run on every machine: the CPU probe is forced each way
    monkeypatch.delenv("FOURHOSTS_EMBED_BF16", raising=False)
    monkeypatch.setattr(E, "cpu_has_native_bf16", lambda: native)
    emb = E.LocalEmbedder(numpy_max=0)
    v = emb.embed(["Lower speed limits cut traffic fatalities.", "Composting cuts landfill waste."])
    if native:
        assert emb.bf16_active and "unchanged" in emb.bf16_reason
    else:
        assert not emb.bf16_active and "no native bf16" in emb.bf16_reason
    assert np.abs(np.linalg.norm(v.astype(np.float64), axis=1) - 1).max() < 1e-6


def test_bf16_keeps_float32_rankings_on_the_labelled_set(tmp_path):
    """Dense retrieval over tests/data/retrieval_*: bf16 must keep the top-1 of >= 95% of the
    queries and nDCG@10 within 0.01 of float32, or automatic bf16 would have to stay off."""
    from pathlib import Path

    from fourhosts_jupyter.memory.evaluate import load_queries, ndcg_at_k
    from fourhosts_jupyter.memory.ingest import ingest
    from fourhosts_jupyter.memory.store import Store

    data = Path(__file__).parent / "data"
    queries = load_queries(data / "retrieval_queries.jsonl")
    ranked: dict[bool, dict[str, list[str]]] = {}
    for bf16 in (False, True):
        emb = E.LocalEmbedder(bf16=bf16, numpy_max=0)  # queries through bf16 too
        store = Store(tmp_path / f"bf16-{bf16}.duckdb")
        ingest(data / "retrieval_corpus.jsonl", store, id_field="_id", embedder=emb, progress=False)
        assert emb.bf16_active is bf16
        ranked[bf16] = {
            q["_id"]: [h.to_json()["id"] for h in
                       search(store, q["text"], k=10, mode="dense", embedder=emb, progress=False)]
            for q in queries
        }

    def ndcg(r: dict[str, list[str]]) -> float:
        return sum(ndcg_at_k(r[q["_id"]], set(q["relevant"])) for q in queries) / len(queries)

    same_top1 = sum(ranked[False][q["_id"]][0] == ranked[True][q["_id"]][0] for q in queries)
    assert same_top1 / len(queries) >= 0.95
    assert abs(ndcg(ranked[True]) - ndcg(ranked[False])) <= 0.01
    assert ndcg(ranked[False]) > 0.8  # the comparison is between two working rankings


def test_openai_tier_needs_a_key_and_a_choice(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        E.get_embedder("openai")
    monkeypatch.setenv("FOURHOSTS_EMBEDDER", "nonsense")
    with pytest.raises(ConfigError, match="unknown embedder 'nonsense'"):
        E.get_embedder()


# -- a loopback /v1/embeddings server -------------------------------------------------------


class _Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_with: tuple[int, dict[str, str]] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, **body})
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                if server.fail_with:
                    status, headers = server.fail_with
                    payload = json.dumps({"error": {"message": "nope", "type": "x", "code": str(status)}})
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                else:
                    data = [
                        {"object": "embedding", "index": i, "embedding": _vec(t, body.get("dimensions", 8))}
                        for i, t in enumerate(body["input"])
                    ]
                    data.reverse()  # the client must sort by index
                    payload = json.dumps({"object": "list", "data": data, "model": body["model"],
                                          "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _vec(text: str, dim: int) -> list[float]:
    """Deterministic, and equal for texts sharing their first word (so search is checkable)."""
    seed = int.from_bytes(hashlib.sha256((text.split() or [""])[0].lower().encode()).digest()[:4], "little")
    return np.random.default_rng(seed).standard_normal(dim).round(4).tolist()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()


def _client(server: _Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="sk-test-not-real-123456", max_retries=0)


def test_openai_embedder_batches_sorts_and_normalises(server):
    emb = E.OpenAIEmbedder("text-embedding-3-small", client=_client(server), batch_size=2)
    assert emb.name == "openai:text-embedding-3-small" and emb.dim == 1536
    out = emb.embed(["alpha one", "beta two", "gamma three", ""])
    assert out.shape == (4, 8) and emb.dim == 8
    assert np.allclose(np.linalg.norm(out, axis=1), 1)
    expected = np.array(_vec("alpha", 8)) / np.linalg.norm(_vec("alpha", 8))
    assert np.allclose(out[0], expected, atol=1e-4)
    assert [r["input"] for r in server.requests] == [["alpha one", "beta two"], ["gamma three", " "]]
    assert all(r["path"] == "/v1/embeddings" and r["model"] == "text-embedding-3-small" for r in server.requests)
    assert "sk-test" not in repr(emb)


def test_openai_errors_become_ours(server):
    emb = E.OpenAIEmbedder(client=_client(server))
    server.fail_with = (401, {})
    with pytest.raises(ProviderAuthError):
        emb.embed(["x"])
    server.fail_with = (429, {"Retry-After": "3"})
    with pytest.raises(ProviderRateLimited) as info:
        emb.embed(["x"])
    assert info.value.retry_after == pytest.approx(3)


def test_openai_tier_from_the_environment_stores_and_searches(server, monkeypatch, store):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real-123456")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("FOURHOSTS_EMBEDDER", "openai")
    monkeypatch.setenv("FOURHOSTS_EMBEDDING_MODEL", "tiny-embed")
    emb = E.get_embedder()
    assert isinstance(emb, E.OpenAIEmbedder) and E.embedder_status()["tier"] == "openai"
    for t in ("Ferries cross the bay", "Trams climb the hill", "Buses stop here"):
        write_memory(store, t, namespace="shared", density=90, embedder=emb)
    hit = search(store, "ferries timetable", k=1, embedder=emb, mode="dense")[0]
    assert hit.text == "Ferries cross the bay"
    with store.connect() as con:
        assert con.execute("SELECT DISTINCT model FROM memories").fetchall() == [("openai:tiny-embed",)]
    assert server.headers[0]["authorization"] == "Bearer sk-test-not-real-123456"
    stored = store.path.read_bytes()
    assert b"sk-test-not-real" not in stored  # the key is never written to the store


def test_asking_for_the_hashing_embedder_by_name_leaves_the_sessions_report_alone():
    session = E.get_embedder()
    assert E.embedder_status()["tier"] == "local"
    assert isinstance(E.get_embedder("hashing"), E.HashingEmbedder)  # a one-off, by name
    assert E.get_embedder() is session and E.embedder_status()["tier"] == "local"
