"""The bundled demo corpus, seeded into an empty store so the key-free default has evidence.

CONTRACT: ensure_seeded(store, embedder=None) -> int   (memories added; 0 if the store had any)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .embeddings import Embedder, get_embedder
from .store import MemoryRecord, Store, content_hash, new_id

CORPUS_PACKAGE = "fourhosts_jupyter.data"


def corpus_files() -> list[Path]:
    root = resources.files(CORPUS_PACKAGE) / "corpus"
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".md"))


def _paragraph_chunks(text: str, target_words: int = 120) -> list[str]:
    chunks, cur = [], []
    for para in [p.strip() for p in text.split("\n\n") if p.strip()]:
        if para.startswith("# "):
            continue
        cur.append(para)
        if sum(len(c.split()) for c in cur) >= target_words:
            chunks.append("\n\n".join(cur))
            cur = []
    if cur:
        chunks.append("\n\n".join(cur))
    return chunks


def ensure_seeded(store: Store, embedder: Embedder | None = None) -> int:
    if store.count_memories():
        return 0
    embedder = embedder or get_embedder()
    records = []
    for path in corpus_files():
        text = path.read_text(encoding="utf-8")
        title = text.splitlines()[0].lstrip("# ").strip() if text.startswith("#") else path.stem
        doc_id = "doc_" + content_hash(text)[:16]
        for i, chunk in enumerate(_paragraph_chunks(text)):
            records.append(
                MemoryRecord(
                    id=new_id("m_"),
                    namespace="shared",
                    memory_type="semantic",
                    content=chunk,
                    source="document",
                    title=title,
                    document_id=doc_id,
                    metadata={"path": f"corpus/{path.name}", "chunk": i, "bundled": True},
                    importance=0.5,
                )
            )
    if not records:
        return 0
    vecs = embedder.embed([r.title + "\n" + r.content for r in records])
    return len(store.add_memories(records, vecs, model=embedder.name))
