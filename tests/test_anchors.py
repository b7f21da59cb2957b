"""The anchor rule: rare figures and codes of a question lead the hybrid ranking (both back-ends,
the real MiniLM model: the rule exists because its vectors blur figures and identifiers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fourhosts_jupyter.context.select import search, select
from fourhosts_jupyter.context.write import write_memory
from fourhosts_jupyter.memory.anchors import anchor_words, is_code
from fourhosts_jupyter.memory.embeddings import HashingEmbedder, get_embedder

# A vaccination programme's notes: most are about doses; the one holding "412" is a cold-chain
# log that names the figure in passing. MiniLM ranks it 5th for "412 doses", after notes on
# doses with other figures; BM25 finds it first.
NOTES = [
    "Vaccine doses delivered to the county in week 3: 1,250 doses of MMR, all stored at 2 to 8 "
    "degrees.",
    "School clinics gave 380 doses of MMR vaccine in the first fortnight of the catch-up campaign.",
    "Doses wasted per clinic fell after multi-dose vials were swapped for single-dose packs.",
    "GP practices ordered 2,900 doses for the spring catch-up; deliveries arrive every Tuesday.",
    "Second-dose uptake among five-year-olds rose to 86 percent by the end of the campaign.",
    "Cold-chain log, Harbour Road depot: a fridge door was left ajar overnight and the alarm did "
    "not reach the on-call pharmacist; 412 were quarantined and later discarded; the alarm "
    "contract is under review.",
    "Pharmacy stock check: 96 doses of MMR expired unused in March and were returned to the "
    "supplier.",
    "Outreach vans gave doses in 14 supermarket car parks, reaching families without a GP.",
]
LOG = "Cold-chain log"


@pytest.fixture
def notes(any_store):
    emb = get_embedder()
    for t in NOTES:
        write_memory(any_store, t, namespace="shared", density=90, embedder=emb)
    return any_store, emb


def _texts(hits):
    return [h.text[:20] for h in hits]


def test_a_figure_finds_the_note_that_holds_it(notes):
    store, emb = notes
    q = "412 doses"
    without = search(store, q, k=5, embedder=emb, progress=False, anchors=False)
    hits = search(store, q, k=5, embedder=emb, progress=False)
    assert not without[0].text.startswith(LOG), _texts(without)  # what the rule mends
    assert hits[0].text.startswith(LOG), _texts(hits)
    assert any(r == "holds '412': a rare figure or code of the question" for r in hits[0].reasons)
    assert not any("rare figure" in r for h in hits[1:] for r in h.reasons)
    # the others keep their fused order
    assert _texts(hits[1:]) == [t for t in _texts(without) if not t.startswith(LOG)][:4]
    # select cites it first too: its diversity step (MMR) works on the rest
    src = select(store, q, k=3, embedder=emb)
    assert src[0].text.startswith(LOG)
    assert any("rare figure" in r for r in src[0].reasons)


def test_a_figure_in_many_passages_anchors_nothing(notes):
    store, emb = notes
    q = "doses given in week 3"
    assert anchor_words(emb, q) == ["3"]  # one passage holds "3": rare in this store
    assert any("rare figure" in r for r in search(store, q, k=1, embedder=emb, progress=False)[0].reasons)
    for i in range(3):  # now four of nine hold it: past max(3, 1 %) of the passages
        write_memory(store, f"Clinic rota {i}: nurses cover week 3 at the Harbour Road site.",
                     namespace="shared", density=90, embedder=emb)
    ranked = search(store, q, k=8, embedder=emb, progress=False)
    assert _texts(ranked) == _texts(search(store, q, k=8, embedder=emb, progress=False, anchors=False))
    assert not any("rare figure" in r for h in ranked for r in h.reasons)


def test_which_words_are_anchors():
    emb = get_embedder()
    assert anchor_words(emb, "what caused INC-2140 and how long were writes down") == ["2140"]
    assert anchor_words(emb, "JWST sunshield L2") == ["JWST", "L2"]  # spelled out; a digit
    assert anchor_words(emb, "How to get rich?") == []
    # a model that cannot say what it spells out: only figures
    assert anchor_words(HashingEmbedder(), "JWST sunshield L2") == ["L2"]


def test_a_held_code_passes_the_relevance_test(tmp_path):
    # retrieval_heldout2 (100 documents): its trial registry number is in one summary, which
    # the calibrated relevance test (cosine or twice the background's BM25 level) rejected,
    # so select cited nothing and the answer said the memory held nothing on it
    from fourhosts_jupyter.context.select import MIN_RELEVANCE
    from fourhosts_jupyter.memory.evaluate import load_beir
    from fourhosts_jupyter.memory.ingest import ingest
    from fourhosts_jupyter.memory.store import Store

    store = Store(tmp_path / "h2.duckdb")
    emb = get_embedder()
    corpus, _ = load_beir(Path(__file__).parent / "data" / "retrieval_heldout2")
    ingest(corpus, store, id_field="_id", embedder=emb, progress=False)
    q = "NCT05518823"
    assert search(store, q, k=3, embedder=emb, progress=False, anchors=False, calibrated=True,
                  min_relevance=MIN_RELEVANCE) == []
    src = select(store, q, k=3, embedder=emb)
    assert src and "NCT05518823" in src[0].text
    # a bare figure is not enough: "2024" would make any stray year evidence
    assert not any(is_code(w) for w in anchor_words(emb, "What did wages do in 2024?"))
