"""Ingestion: every format, chunking, dedup, per-file errors, the CLI, and a kill mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from fourhosts_jupyter.context.select import search
from fourhosts_jupyter.errors import ConfigError, IngestError
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.ingest import chunk, ingest, parse
from fourhosts_jupyter.memory.store import Store

DATA = Path(__file__).parent / "data"
EMB = HashingEmbedder()
ROOT = Path(__file__).parent.parent


def _ingest(paths, store, **kw):
    return ingest(paths, store, embedder=EMB, progress=False, **kw)


def _texts(store):
    return " ".join(store.memories(limit=None)["content"])


@pytest.mark.parametrize(
    "name, title, must, must_not",
    [
        ("ingest_note.txt", "Field note on school streets", "drop-off and pick-up", None),
        ("ingest_guide.md", "Rain gardens for street drainage", "deep-rooted native plants", "author: fixtures"),
        ("ingest_page.html", "Night buses and shift workers", "all-night bus routes", "tracking"),
        ("ingest_paper.pdf", "Cycle parking at railway stations", "Utrecht Centraal", None),
    ],
)
def test_each_document_format(store, name, title, must, must_not):
    report = _ingest(DATA / name, store)
    assert not report.failed and report.passages >= 1
    df = store.memories(limit=None)
    assert set(df["title"]) == {title}
    assert must in _texts(store)
    if must_not:
        assert must_not not in _texts(store)
    assert search(store, must, k=1, embedder=EMB)[0].title == title


def test_csv_rows_become_documents_with_their_ids(store):
    report = _ingest(DATA / "ingest_table.csv", store, id_field="code", text_field="description")
    assert report.documents == 3 and report.passages == 3
    hit = search(store, "bollards residential through traffic", k=1, embedder=EMB)[0]
    assert hit.to_json()["id"] == "C2" and hit.title == "Low traffic neighbourhood"


def test_jsonl_with_id_and_text_fields(store):
    report = _ingest(DATA / "ingest_records.jsonl", store, id_field="doc", text_field="body",
                     title_field="heading")
    assert report.passages == 3
    hit = search(store, "walk signal before green light", k=1, embedder=EMB)[0]
    assert hit.to_json()["id"] == "r3" and hit.title == "Leading pedestrian intervals"


def test_jsonl_text_field_is_found_or_asked_for(store, tmp_path):
    report = _ingest(DATA / "ingest_records.jsonl", store)  # "body" is a known text field
    assert report.passages == 3 and not report.failed
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"ref": 1, "summary": "Bus lanes on arterials."}\n')
    (err,) = _ingest(odd, store).failed
    assert "line 1: no text field" in err.reason and "--text-field" in err.reason and "summary" in err.reason
    (err,) = _ingest(odd, store, text_field="body").failed
    assert "no field 'body'" in err.reason


def test_dataframe(store):
    df = pd.DataFrame({"id": ["a", "b"], "text": ["Ferries cross the harbour every ten minutes.", None],
                       "title": ["Ferries", "Empty"]})
    report = _ingest(df, store)
    assert report.ok[0].path == "dataframe" and report.documents == 2
    assert "Ferries cross the harbour" in _texts(store)


def test_a_bad_file_fails_alone(store, tmp_path):
    broken_pdf = tmp_path / "broken.pdf"
    broken_pdf.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary")
    report = _ingest(
        [DATA / "ingest_note.txt", DATA / "ingest_bad.jsonl", broken_pdf, tmp_path / "missing.md",
         binary, DATA / "ingest_guide.md", ROOT / "pyproject.toml"],
        store,
        text_field="body",
    )
    failed = {Path(e.path).name: e.reason for e in report.failed}
    assert set(failed) == {"ingest_bad.jsonl", "broken.pdf", "missing.md", "blob.txt", "pyproject.toml"}
    assert "line 2: invalid JSON" in failed["ingest_bad.jsonl"]
    assert "not a readable PDF" in failed["broken.pdf"]
    assert "no such file" in failed["missing.md"]
    assert "binary" in failed["blob.txt"]
    assert "unsupported format '.toml'" in failed["pyproject.toml"]
    assert {Path(f.path).name for f in report.ok} == {"ingest_note.txt", "ingest_guide.md"}
    assert "drop-off" in _texts(store) and "Rain gardens" in _texts(store)
    assert "FAILED" in str(report) and "ingest_bad.jsonl" in str(report)
    with pytest.raises(IngestError, match="ingest_bad.jsonl: line 2"):
        report.raise_for_errors()


def test_directories_are_walked(store, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A\n\nAlpha passage about bridges.")
    (tmp_path / "sub" / "b.txt").write_text("Beta passage about tunnels.")
    (tmp_path / "sub" / "skip.bin").write_bytes(b"\x00")
    report = _ingest(tmp_path, store)
    assert sorted(Path(f.path).name for f in report.ok) == ["a.md", "b.txt"] and not report.failed


def test_chunks_overlap_and_stay_within_the_window():
    paras = [" ".join(f"p{i}w{j}" for j in range(25)) + "." for i in range(20)]
    text = "\n\n".join(paras)
    chunks = chunk(text, words=100, overlap=30)
    assert len(chunks) > 4
    assert all(len(c.split()) <= 100 for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert a.split("\n\n")[-1] == b.split("\n\n")[0]  # the last paragraph is carried over
    words = set(" ".join(chunks).split())
    assert words == set(text.split())  # nothing lost
    long_sentence = " ".join(f"w{i}" for i in range(500))
    assert all(len(c.split()) <= 100 for c in chunk(long_sentence, words=100, overlap=20))


def test_dedup_by_content_and_changed_files_replace(store, tmp_path):
    f = tmp_path / "policy.md"
    f.write_text("# Policy\n\nFirst version about curbside loading zones.")
    first = _ingest(f, store)
    assert first.passages == 1
    again = _ingest(f, store)
    assert again.ok[0].status == "unchanged" and again.passages == 0
    assert store.count_memories() == 1
    f.write_text("# Policy\n\nSecond version about delivery bays and loading permits.")
    changed = _ingest(f, store)
    assert changed.ok[0].status == "replaced"
    assert store.count_memories() == 1 and "Second version" in _texts(store)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 1
    # the same text in another namespace is another memory; in the same one it is not
    g = tmp_path / "copy.md"
    g.write_text(f.read_text())
    assert _ingest(g, store).passages == 0
    assert _ingest(g, store, namespace="teddy").passages == 1


def test_unknown_namespace_is_refused(store):
    with pytest.raises(ConfigError, match="unknown namespace 'nobody'"):
        _ingest(DATA / "ingest_note.txt", store, namespace="nobody")


def test_parse_names_the_file():
    with pytest.raises(IngestError) as info:
        parse(DATA / "ingest_bad.jsonl", id_field=None, text_field="body", title_field=None)
    assert info.value.path.endswith("ingest_bad.jsonl")


def _cli(*args, env_extra=None, **kw):
    env = {**os.environ, "FOURHOSTS_EMBEDDER": "hashing", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=ROOT, **kw)


def test_cli_ingest_and_search_json(tmp_path):
    db = tmp_path / "cli.duckdb"
    r = _cli("ingest", "--store", str(db), str(DATA / "ingest_records.jsonl"), "--id-field", "doc",
             "--text-field", "body", "--title-field", "heading")
    assert r.returncode == 0, r.stderr
    assert "3 new passages" in r.stdout
    r = _cli("search", "--store", str(db), "--k", "2", "--json", "pedestrians crosswalk before cars")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["id"] == "r3"
    assert {"id", "score", "text", "source"} <= set(lines[0]) and lines[0]["score"] >= lines[1]["score"]
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"_id": "a", "text": "temporary paint planters"}\n{"_id": "b", "text": "parking near crosswalks"}\n')
    r = _cli("search", "--store", str(db), "--k", "1", "--mode", "bm25", "--queries", str(queries))
    got = [(x["query_id"], x["id"]) for x in map(json.loads, r.stdout.splitlines())]
    assert got == [("a", "r1"), ("b", "r2")]


def test_cli_reports_a_bad_file_and_exits_1(tmp_path):
    db = tmp_path / "cli.duckdb"
    r = _cli("ingest", "--store", str(db), str(DATA / "ingest_note.txt"), str(DATA / "ingest_bad.jsonl"),
             "--text-field", "body")
    assert r.returncode == 1
    assert "ok      " in r.stdout and "FAILED  " in r.stdout and "line 2: invalid JSON" in r.stdout
    r = _cli("search", "--store", str(tmp_path / "none.duckdb"), "anything")
    assert r.returncode == 2 and "no store at" in r.stderr and "fourhosts ingest" in r.stderr


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from fourhosts_jupyter.memory.embeddings import HashingEmbedder
    from fourhosts_jupyter.memory.ingest import ingest
    from fourhosts_jupyter.memory.store import Store

    class SlowEmbedder(HashingEmbedder):
        # a real embedder takes seconds per batch; this gives the test time to kill us mid-way
        def embed(self, texts):
            time.sleep(0.15)
            return super().embed(texts)

    def committed(n):
        print("committed", n, flush=True)

    ingest(sys.argv[2], Store(sys.argv[1]), embedder=SlowEmbedder(), progress=False,
           batch_passages=50, on_commit=committed)
    print("done", flush=True)
    """
)


def test_kill_during_ingestion_keeps_committed_batches(tmp_path):
    corpus = tmp_path / "big.jsonl"
    with corpus.open("w") as fh:
        for i in range(2000):
            fh.write(json.dumps({"id": f"x{i}", "text": f"Record {i}: bus stop {i} needs a shelter and seating."}) + "\n")
    db = tmp_path / "kill.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(db), str(corpus)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    seen = []
    for line in proc.stdout:
        seen.append(line.split())
        if len(seen) == 3:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and seen[-1][0] == "committed"
    store = Store(db)
    n = store.count_memories()
    assert 150 <= n < 2000  # everything committed survived; the run did not finish
    with store.connect() as con:
        # no half document: each document row's passages are all there, and no passage is orphaned
        bad = con.execute(
            """SELECT count(*) FROM documents d
               WHERE d.chunk_count <> (SELECT count(*) FROM memories m WHERE m.document_id = d.id)"""
        ).fetchone()[0]
        orphans = con.execute(
            "SELECT count(*) FROM memories m WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = m.document_id)"
        ).fetchone()[0]
    assert bad == 0 and orphans == 0
    # running it again carries on and finishes
    report = _ingest(corpus, store)
    assert store.count_memories() == 2000 and report.passages == 2000 - n
    hit = search(store, "bus stop 1234 shelter", k=1, embedder=EMB)[0]
    assert hit.to_json()["id"] == "x1234"


PARAS = [
    "Protected bike lanes separate cyclists from traffic with kerbs, posts or parked cars along arterials.",
    "Raised crossings slow turning drivers and put pedestrians at eye level near schools and shops.",
    "Speed cameras on wide roads cut severe crashes when fines fund local safety work each year.",
    "Daylighting corners removes parking next to crosswalks so drivers see children before turning.",
]


def _doc_rows(store):
    with store.connect() as con:
        return {
            Path(path).name: (held, chunk_count, complete)
            for path, held, chunk_count, complete in con.execute(
                """SELECT d.path, (SELECT count(*) FROM document_passages r WHERE r.document_id = d.id),
                          d.chunk_count, d.complete FROM documents d"""
            ).fetchall()
        }


def test_reingesting_one_of_two_identical_files_keeps_the_others_passages(store, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    for f in (a, b):
        f.write_text("\n\n".join(PARAS[:3]))
    kw = dict(chunk_words=20, overlap=0)
    assert _ingest(a, store, **kw).passages == 3
    rb = _ingest(b, store, **kw)
    assert rb.passages == 0 and rb.ok[0].duplicates == 3  # stored once, held by both
    a.write_text("\n\n".join(PARAS[2:]))  # a changes: paragraph 3 stays, 1-2 go, 4 comes
    ra = _ingest(a, store, **kw)
    assert ra.ok[0].status == "replaced" and ra.passages == 1
    # b still holds all three of its passages; a holds its two
    assert sorted(store.memories(limit=None)["content"]) == sorted(PARAS)
    assert _doc_rows(store) == {"a.txt": (2, 2, True), "b.txt": (3, 3, True)}
    again = _ingest(b, store, **kw)
    assert again.ok[0].status == "unchanged"
    hit = search(store, "raised crossings pedestrians eye level", k=1, embedder=EMB)[0]
    assert hit.text == PARAS[1] and hit.origin == str(b)  # handed over to b, not left to a's old version
    # forgetting one of two holders keeps the shared passage; forgetting the last removes it
    with store.connect() as con:
        ids = dict(con.execute("SELECT path, id FROM documents").fetchall())
    assert store.forget_documents([ids[str(b)]]) == 2  # paragraphs 1-2 were b's alone
    assert sorted(store.memories(limit=None)["content"]) == sorted(PARAS[2:])
    assert store.forget_documents([ids[str(a)]]) == 2
    assert store.count_memories() == 0 and _doc_rows(store) == {}


def test_forgetting_a_passage_updates_the_documents_that_held_it(store, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    for f in (a, b):
        f.write_text("\n\n".join(PARAS[:2]))
    _ingest([a, b], store, chunk_words=20, overlap=0)
    first = store.memories(limit=None).set_index("content").loc[PARAS[0], "id"]
    assert store.forget([first]) == 1
    assert _doc_rows(store) == {"a.txt": (1, 1, True), "b.txt": (1, 1, True)}


INTERRUPT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from fourhosts_jupyter import cli
    from fourhosts_jupyter.memory import embeddings, progress

    class SlowEmbedder(embeddings.HashingEmbedder):
        # a real embedder takes seconds per batch; this gives the test time to interrupt
        def embed(self, texts):
            time.sleep(0.3)
            return super().embed(texts)

    embeddings.get_embedder = lambda prefer=None: SlowEmbedder()
    progress.PROGRESS_EVERY = 0.05  # "every few seconds", shortened for the test
    sys.exit(cli.main(["ingest", "--store", sys.argv[1], "--chunk-words", "20", sys.argv[2]]))
    """
)


def test_a_large_file_commits_in_batches_reports_progress_and_resumes(tmp_path):
    big = tmp_path / "big.txt"
    n_total = 5000
    big.write_text("\n\n".join(f"Paragraph {i} says street {i} needs a crossing, a bench and trees." for i in range(n_total)))
    db = tmp_path / "big.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT_SCRIPT, str(db), str(big)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines = []
    for line in proc.stderr:  # a pipe, not a terminal: plain progress lines, no bar
        lines.append(line)
        if line.startswith("ingesting: ") and int(line.split()[1].split("/")[0].replace(",", "")) >= 512:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=60)
    assert lines and all("\r" not in x for x in lines), lines
    assert lines[0].startswith("ingesting: 256/5,000 passages (5%)"), lines
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "fourhosts: interrupted", err
    store = Store(db)
    kept = store.count_memories()
    # whole batches of the one file were kept (256 passages at first, more as embedding is fast)
    assert 512 <= kept < n_total and kept % 256 == 0
    assert _doc_rows(store) == {"big.txt": (kept, kept, False)}  # held so far; not complete
    report = _ingest(big, store, chunk_words=20, overlap=5)  # what the CLI passes for --chunk-words 20
    assert report.ok[0].status == "ingested"
    assert report.passages == n_total - kept and report.ok[0].duplicates == kept
    with store.connect() as con:
        distinct = con.execute("SELECT count(DISTINCT content_hash) FROM memories").fetchone()[0]
    assert store.count_memories() == distinct == n_total  # nothing duplicated
    assert _doc_rows(store) == {"big.txt": (n_total, n_total, True)}
    assert _ingest(big, store, chunk_words=20, overlap=5).ok[0].status == "unchanged"


FULL_DISK_DRIVER = textwrap.dedent(
    """
    # runs in its own mount namespace (unshare): the tmpfs disappears with it
    import json, os, shutil, subprocess, sys
    disk, big, out = sys.argv[1:4]
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", disk],
                             capture_output=True, text=True)
    if mounted.returncode:
        print(json.dumps({"mounted": False, "why": mounted.stderr.strip()}))
        sys.exit(0)
    filler = os.path.join(disk, "filler")
    with open(filler, "wb") as fh:
        fh.write(b"\\0" * (37 << 20))  # about 3 MB left: a few batches fit, not the file
    cmd = [sys.executable, "-m", "fourhosts_jupyter.cli", "ingest", "--quiet", "--store",
           os.path.join(disk, "s.duckdb"), "--chunk-words", "20", big]
    result = {"mounted": True}
    for step in ("full", "done"):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        result[step] = [r.returncode, r.stdout, r.stderr]
        for name in ("s.duckdb", "s.duckdb.wal"):  # the store as it is now, for the test to open
            if os.path.exists(os.path.join(disk, name)):
                shutil.copy(os.path.join(disk, name), os.path.join(out, step + "-" + name))
        os.remove(filler) if os.path.exists(filler) else None  # free the space, then re-run
    print(json.dumps(result))
    """
)


def test_a_full_disk_during_ingest_is_one_line_and_a_rerun_resumes(tmp_path):
    from system_packages import require, unavailable

    unshare = require("unshare", "util-linux")
    big = tmp_path / "big.txt"
    n_total = 6000
    big.write_text("\n\n".join(f"Paragraph {i} says street {i} needs a crossing, a bench and trees near school {i * 7}."
                               for i in range(n_total)))
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {**os.environ, "FOURHOSTS_EMBEDDER": "hashing"}
    r = subprocess.run([unshare, "--mount", "--map-root-user", sys.executable, "-c", FULL_DISK_DRIVER, str(disk),
                        str(big), str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if r.returncode or not json.loads(r.stdout or "{}").get("mounted"):
        unavailable(f"cannot mount a small tmpfs here ({(r.stdout + r.stderr).strip()[-200:]})")
    result = json.loads(r.stdout)
    code, stdout, stderr = result["full"]
    assert code == 1 and len(stderr.strip().splitlines()) == 1, stderr
    assert "no space left on device" in stderr and "run the same command again" in stderr
    assert "resumes where it stopped" in stderr and "Traceback" not in stderr
    full = Store(out / "full-s.duckdb")
    kept = full.count_memories()
    assert 256 <= kept < n_total and kept % 256 == 0  # the committed batches, each whole
    assert _doc_rows(full) == {"big.txt": (kept, kept, False)}
    code, stdout, stderr = result["done"]
    assert code == 0, stderr
    assert f"{n_total - kept} new passages" in stdout and f"{kept} already stored" in stdout
    done = Store(out / "done-s.duckdb")
    assert done.count_memories() == n_total
    assert _doc_rows(done) == {"big.txt": (n_total, n_total, True)}


def test_batches_grow_only_when_embedding_is_fast():
    from fourhosts_jupyter.memory.ingest import _next_batch

    assert _next_batch(256, 256, 256, 5.0) == 256  # the local model: a commit every batch
    assert _next_batch(256, 256, 256, 0.1) == 5120  # ~2 s of work per commit
    assert _next_batch(256, 256, 256, 0.001) == 32 * 256  # capped
    assert _next_batch(1024, 256, 10, 0.001) == 1024  # mostly duplicates: no new evidence


def test_an_interrupted_reingest_of_a_changed_file_keeps_the_old_version_whole(store, tmp_path):
    f = tmp_path / "plan.txt"
    f.write_text("\n\n".join(f"Version one, item {i}: repaint crossing {i} this spring." for i in range(30)))
    assert _ingest(f, store, chunk_words=12, overlap=0).passages == 30
    f.write_text("\n\n".join(f"Version two, item {i}: rebuild junction {i} next year." for i in range(30)))

    def stop(_committed):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _ingest(f, store, chunk_words=12, overlap=0, batch_passages=10, on_commit=stop)
    with store.connect() as con:
        versions = con.execute("SELECT chunk_count, complete FROM documents ORDER BY complete DESC").fetchall()
    assert versions == [(30, True), (10, False)]  # the old version whole beside the new one's first batch
    report = _ingest(f, store, chunk_words=12, overlap=0, batch_passages=10)
    assert report.ok[0].status == "replaced" and report.passages == 20 and report.ok[0].duplicates == 10
    assert _doc_rows(store) == {"plan.txt": (30, 30, True)}
    assert all(t.startswith("Version two") for t in store.memories(limit=None)["content"])


def test_progress_off_a_terminal_is_plain_lines_at_most_every_few_seconds():
    import io

    from fourhosts_jupyter.memory.progress import Progress

    log = io.StringIO()  # not a terminal
    bar = Progress("ingesting", "passage", stream=log, every=3600)
    bar.add_total(1000)
    bar.update(500)
    bar.close()
    assert log.getvalue() == ""  # quicker than one interval: nothing to report
    bar = Progress("ingesting", "passage", stream=log, every=0)
    bar.add_total(1000)
    bar.update(250)
    bar.update(750)
    bar.close()
    lines = log.getvalue().splitlines()
    assert [x.split(",")[0] for x in lines] == ["ingesting: 250/1", "ingesting: 1", "ingesting: 1"]
    assert lines[0].startswith("ingesting: 250/1,000 passages (25%)") and "\r" not in log.getvalue()
    quiet = io.StringIO()
    off = Progress("ingesting", "passage", stream=quiet, enabled=False, every=0)
    off.add_total(10)
    off.update(10)
    off.close()
    assert quiet.getvalue() == ""


def test_jsonl_lines_may_hold_unicode_line_separators(store, tmp_path):
    # JSON strings may carry U+2028 / U+0085 raw (MS MARCO does): only "\n" ends a record
    path = tmp_path / "seps.jsonl"
    rows = [{"_id": "a", "text": "first\u2028part of one passage\x85still the same"},
            {"_id": "b", "text": "second passage"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    report = _ingest(path, store, id_field="_id")
    assert not report.failed and report.documents == 2
