"""The bundled demo corpus, seeded into an empty store so the key-free default has evidence.

CONTRACT: ensure_seeded(store, embedder=None) -> int   (memories added; 0 if the store had any)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .embeddings import Embedder
from .store import Store

CORPUS_PACKAGE = "fourhosts_jupyter.data"


def corpus_files() -> list[Path]:
    root = resources.files(CORPUS_PACKAGE) / "corpus"
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".md"))


def ensure_seeded(store: Store, embedder: Embedder | None = None) -> int:
    """Ingest the bundled corpus into the 'shared' namespace if the store holds no memories."""
    if store.count_memories():
        return 0
    from .ingest import ingest

    files = corpus_files()
    if not files:
        return 0
    report = ingest(
        files, store, "shared", embedder=embedder, progress=False, metadata={"bundled": True}
    )
    report.raise_for_errors()
    return report.passages
