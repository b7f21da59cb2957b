"""Questions outside the memory get no sources (issue 15 point 3): the calibrated relevance test.

In-memory and out-of-memory questions over three stores, each with the real MiniLM model:

- the demo corpus (``tests/data/relevance_demo.jsonl``: 24 covered questions with their
  documents, 24 on subjects it does not cover);
- the labelled dev set (its own 75 queries in; the held-out queries, on other subjects, out);
- the held-out set (its 58 queries in; the demo corpus's covered questions out).

The test's levels were chosen on the first two; the held-out store is the check.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.context.relevance import calibrate
from fourhosts_jupyter.context.select import select
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.events import AnswerReady, SourcesSelected, TextDelta
from fourhosts_jupyter.memory.embeddings import get_embedder
from fourhosts_jupyter.memory.evaluate import load_beir, load_queries
from fourhosts_jupyter.memory.ingest import ingest
from fourhosts_jupyter.memory.retriever import open_indexes
from fourhosts_jupyter.memory.store import Store

DATA = Path(__file__).parent / "data"
DEMO_QUESTIONS = load_queries(DATA / "relevance_demo.jsonl")


def test_a_question_outside_the_memory_gets_no_sources_and_an_answer_that_says_so(seeded_store):
    events = list(Engine(Settings.from_env(), store=seeded_store).stream("What did wages do in 2024?"))
    assert isinstance(events[-1], AnswerReady)  # the run succeeds
    assert next(e for e in events if isinstance(e, SourcesSelected)).sources == ()
    text = events[-1].answer.text
    assert text == "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "holds nothing on this question" in text
    assert "`%research ingest PATH`" in text and "`fourhosts ingest PATH`" in text
    assert not re.search(r"\[\d+\]", text)  # nothing cited


def _shares(store, emb, inside, outside):
    """(share of outside questions with no source, share of inside questions whose relevant
    documents the uncalibrated selection cites are all still cited)."""

    def ids(q, calibrated):
        return {s.origin.rsplit("/", 1)[-1] if s.origin.endswith(".md") else s.id
                for s in select(store, q, k=5, embedder=emb, calibrated=calibrated)}

    none = sum(not ids(q, True) for q in outside) / len(outside)
    kept = []
    for q, relevant in inside:
        before = {d for d in ids(q, False) if d in relevant}
        kept.append(bool(before) and before <= ids(q, True))
    return none, sum(kept) / len(kept)


def test_demo_corpus_in_and_out_of_memory_questions(seeded_store):
    emb = get_embedder()
    inside = [(q["text"], set(q["relevant"])) for q in DEMO_QUESTIONS if q["relevant"]]
    outside = [q["text"] for q in DEMO_QUESTIONS if not q["relevant"]]
    none, kept = _shares(seeded_store, emb, inside, outside)
    assert none >= 0.95 and kept >= 0.95  # measured 1.00 and 1.00


@pytest.fixture(scope="module")
def labelled_stores(tmp_path_factory):
    emb = get_embedder()
    root = tmp_path_factory.mktemp("rel")
    dev = Store(root / "dev.duckdb")
    ingest(DATA / "retrieval_corpus.jsonl", dev, id_field="_id", embedder=emb, progress=False)
    corpus, held_queries = load_beir(DATA / "retrieval_heldout")
    held = Store(root / "held.duckdb")
    ingest(corpus, held, id_field="_id", embedder=emb, progress=False)
    return emb, dev, held, held_queries


def _external_ids(store):
    """memory id -> the corpus id the JSONL row carried."""
    si = open_indexes(store)
    return {r.id: r.external_id for r in si.rows.values()}


def test_labelled_sets_in_and_out_of_memory_questions(labelled_stores):
    emb, dev, held, held_queries = labelled_stores
    dev_queries = load_queries(DATA / "retrieval_queries.jsonl")
    for store, inside, outside, floors in (
        # measured: no source for 0.914 of the outside questions, 1.000 keep their sources
        (dev, dev_queries, [q["text"] for q in held_queries], (0.88, 0.97)),  # tuning split
        # measured: 1.000 and 0.948 (3 of 58 held-out questions lose their source)
        (held, held_queries, [q["text"] for q in DEMO_QUESTIONS if q["relevant"]], (0.97, 0.92)),
    ):
        ext = _external_ids(store)
        mapped = [(q["text"], {m for m, e in ext.items() if e in set(q["relevant"])}) for q in inside]
        none, kept = _shares(store, emb, mapped, outside)
        assert none >= floors[0] and kept >= floors[1], (none, kept)


def test_the_level_is_calibrated_per_store(labelled_stores, seeded_store):
    emb, dev, held, _ = labelled_stores
    levels = []
    for store in (seeded_store, dev, held):
        si = open_indexes(store)
        with si.lock:
            levels.append(calibrate(si, store, emb))
    cos = [c.cosine for c in levels]
    assert len({round(c, 3) for c in cos}) == 3 and max(cos) - min(cos) > 0.05
    assert all(0.1 < c < 0.6 for c in cos)


def test_levels_are_kept_while_the_store_barely_changes_and_the_background_is_saved(labelled_stores):
    from fourhosts_jupyter.context import relevance
    from fourhosts_jupyter.context.write import write_memory

    emb, dev, _, _ = labelled_stores
    si = open_indexes(dev)
    relevance._bank_vectors.clear()
    with si.lock:
        si.calibrations.clear()
        first = calibrate(si, dev, emb)
    (saved,) = si.index_dir.glob("background-all-MiniLM-L6-v2-*.npy")
    write_memory(dev, "Wages rose by four per cent in the year to March.", namespace="shared",
                 density=90, embedder=emb)  # one memory more: 80 instead of 79
    si = open_indexes(dev)
    with si.lock:
        assert calibrate(si, dev, emb) is first
        # a new process: the background vectors come from the file, not the model
        relevance._bank_vectors.clear()
        si.calibrations.clear()
        calls = []

        class Counting:
            name = emb.name

            def embed(self, texts):
                calls.append(len(texts))
                return emb.embed(texts)

        again = calibrate(si, dev, Counting())
    assert calls == [] and again is not first
    assert again.cosine == pytest.approx(first.cosine, abs=0.05)
