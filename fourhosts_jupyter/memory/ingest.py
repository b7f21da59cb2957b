"""Document ingestion: files (text, Markdown, HTML, PDF, CSV, JSONL) and DataFrames → passages.

``ingest(paths_or_dataframe, store=None, namespace="shared")`` parses each source, splits the
text into overlapping passages, skips passages already stored in the namespace (content hash),
embeds the rest in batches and commits each batch in one transaction together with its
documents' rows and which passages each document holds. A large document spans several
batches and is marked complete by its last one, so a process killed or out of disk space
mid-way keeps every finished batch, and running the same ingest again carries on where it
stopped, duplicating nothing. Identical text is stored once per namespace and held by every
document that has it: replacing or forgetting one document never removes another's passages.

A file that cannot be read fails alone: the report names it and the reason, the other files
continue. Nothing is rendered: text from documents is data, never HTML.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import IngestError, StoreFull
from .embeddings import Embedder, get_embedder
from .retriever import embed_text, open_indexes
from ..cancel import check_cancelled
from .progress import Progress
from .sources import CSV_EXT, HTML_EXT, JSONL_EXT, MARKDOWN_EXT, PDF_EXT, SUPPORTED, TEXT_EXT, expand
from .store import MemoryRecord, Store, content_hash, disk_full, new_id, recount, utcnow

log = logging.getLogger(__name__)


TEXT_FIELDS = ("text", "content", "body", "passage", "abstract", "document")
ID_FIELDS = ("_id", "id", "doc_id", "docid")

CHUNK_WORDS = 160  # ~210 word pieces: inside MiniLM's 256-token window with the title line
OVERLAP_WORDS = 32


@dataclass(frozen=True)
class Document:
    """One parsed document before chunking."""

    text: str
    title: str
    format: str
    path: str  # where it came from (file path, or "dataframe")
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileResult:
    path: str
    status: str  # ingested | unchanged | replaced
    documents: int
    passages: int  # passages added
    duplicates: int  # passages skipped: already stored in the namespace


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: files that worked, files that failed (each an IngestError)."""

    ok: tuple[FileResult, ...]
    failed: tuple[IngestError, ...]
    namespace: str
    seconds: float

    @property
    def passages(self) -> int:
        return sum(f.passages for f in self.ok)

    @property
    def documents(self) -> int:
        return sum(f.documents for f in self.ok)

    def __str__(self) -> str:
        lines = [
            f"ingested {len(self.ok)} source(s) into '{self.namespace}': {self.documents} documents, "
            f"{self.passages} new passages in {self.seconds:.1f} s"
        ]
        for f in self.ok:
            extra = f", {f.duplicates} already stored" if f.duplicates else ""
            lines.append(f"  ok      {f.path}: {f.status}, {f.passages} passages{extra}")
        for e in self.failed:
            lines.append(f"  FAILED  {e.path}: {e.reason}")
        return "\n".join(lines)

    def raise_for_errors(self) -> IngestReport:
        if self.failed:
            raise self.failed[0]
        return self


# -- parsing -------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IngestError(str(path), "no such file: check the path") from None
    except IsADirectoryError:
        raise IngestError(str(path), "is a directory") from None
    except OSError as exc:
        raise IngestError(str(path), f"cannot read it ({exc.strerror}); check its permissions") from exc
    if b"\x00" in data[:8192]:
        raise IngestError(str(path), "looks like a binary file, not text; convert it to text first")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            str(path), f"is not UTF-8 text (bad byte at offset {exc.start}); re-save it as UTF-8"
        ) from exc


def _first_heading(text: str) -> str | None:
    m = re.search(r"^\s{0,3}#{1,2}\s+(.+?)\s*#*\s*$", text, re.M)
    return m.group(1).strip() if m else None


def _parse_text(path: Path, fmt: str) -> list[Document]:
    text = _read_text(path)
    if fmt == "markdown":
        text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # YAML front matter
        title = _first_heading(text) or path.stem
    else:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        title = first if 0 < len(first) <= 120 else path.stem
    return [Document(text=text, title=title, format=fmt, path=str(path))]


def _parse_html(path: Path) -> list[Document]:
    from bs4 import BeautifulSoup

    raw = _read_text(path)
    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "nav", "footer"]):
        tag.decompose()
    title = ""
    if soup.title and soup.title.string:
        title = soup.title.string.strip()
    elif soup.find("h1"):
        title = soup.find("h1").get_text(" ", strip=True)
    body = soup.body or soup
    # block elements end paragraphs; the chunker splits on blank lines
    for br in body.find_all("br"):
        br.replace_with("\n")
    blocks = []
    for el in body.find_all(["p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "td", "blockquote"]):
        if el.find(["p", "li", "h1", "h2", "h3", "pre", "blockquote"]):
            continue  # a container: its children are taken one by one
        t = el.get_text(" ", strip=True)
        if t:
            blocks.append(t)
    text = "\n\n".join(blocks) if blocks else body.get_text("\n", strip=True)
    return [Document(text=text, title=title or path.stem, format="html", path=str(path))]


def _parse_pdf(path: Path) -> list[Document]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover - pypdf is a declared dependency
        raise IngestError(str(path), "reading PDF needs pypdf: pip install pypdf") from exc
    if not path.exists():
        raise IngestError(str(path), "no such file: check the path")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings repeat our one error
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(str(path), "the PDF is password-protected; decrypt it first")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise IngestError(str(path), f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise IngestError(
            str(path), "the PDF has no extractable text (a scanned image?); run OCR on it first"
        )
    return [
        Document(
            text=text, title=str(meta_title).strip() or path.stem, format="pdf", path=str(path),
            metadata={"pages": len(pages)},
        )
    ]


def _pick(record: dict[str, Any], wanted: str | None, defaults: Sequence[str]) -> str | None:
    if wanted:
        return wanted
    for name in defaults:
        if name in record:
            return name
    return None


def _records_to_docs(
    records: Iterable[tuple[str, dict[str, Any]]],
    where: str,
    fmt: str,
    *,
    id_field: str | None,
    text_field: str | None,
    title_field: str | None,
    join_columns: bool,
) -> list[Document]:
    docs = []
    for loc, rec in records:
        tf = _pick(rec, text_field, TEXT_FIELDS)
        if tf is None:
            if not join_columns:
                raise IngestError(
                    where,
                    f"{loc}: no text field; pass --text-field (text_field=) naming one of: "
                    + ", ".join(map(str, rec)),
                )
            text = "\n".join(f"{k}: {v}" for k, v in rec.items() if _present(v))
        else:
            if tf not in rec:
                raise IngestError(
                    where, f"{loc}: no field {tf!r} (fields: {', '.join(map(str, rec))})"
                )
            text = "" if not _present(rec[tf]) else str(rec[tf])
        idf = _pick(rec, id_field, ID_FIELDS)
        if id_field and id_field not in rec:
            raise IngestError(where, f"{loc}: no field {id_field!r} (fields: {', '.join(map(str, rec))})")
        ext = str(rec[idf]) if idf and _present(rec.get(idf)) else None
        tif = _pick(rec, title_field, ("title",))
        title = str(rec[tif]).strip() if tif and _present(rec.get(tif)) else ""
        if not text.strip() and not title:
            continue  # an empty row carries nothing to find
        docs.append(
            Document(
                text=text, title=title or (ext or ""), format=fmt, path=where, external_id=ext,
                metadata={"row": loc},
            )
        )
    return docs


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        import math

        return not (isinstance(v, float) and math.isnan(v))
    except TypeError:
        return True


def _parse_jsonl(path: Path, **fields: Any) -> list[Document]:
    text = _read_text(path)

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        # only "\n" ends a record: str.splitlines would also split at U+2028 / U+0085, which
        # JSON strings may hold raw
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestError(str(path), f"line {n}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(rec, dict):
                raise IngestError(str(path), f"line {n}: expected a JSON object, got {type(rec).__name__}")
            yield f"line {n}", rec

    return _records_to_docs(records(), str(path), "jsonl", join_columns=False, **fields)


def _parse_csv(path: Path, **fields: Any) -> list[Document]:
    import pandas as pd

    if not path.exists():
        raise IngestError(str(path), "no such file: check the path")
    try:
        df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                         keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise IngestError(str(path), f"not a readable CSV ({str(exc).splitlines()[0]})") from exc
    return _frame_docs(df, str(path), "csv", **fields)


def _frame_docs(df: Any, where: str, fmt: str, **fields: Any) -> list[Document]:
    cols = [str(c) for c in df.columns]
    for name in ("id_field", "text_field", "title_field"):
        want = fields.get(name)
        if want and want not in cols:
            raise IngestError(where, f"no column {want!r} (columns: {', '.join(cols)})")
    recs = ((f"row {i + 1}", dict(zip(cols, row))) for i, row in enumerate(df.itertuples(index=False)))
    return _records_to_docs(recs, where, fmt, join_columns=True, **fields)


def parse(source: Path | Any, **fields: Any) -> list[Document]:
    """The documents in one source (a path or a DataFrame); raises IngestError naming it."""
    if not isinstance(source, (str, Path)):
        return _frame_docs(source, "dataframe", "dataframe", **fields)
    path = Path(source).expanduser().absolute()
    ext = path.suffix.lower()
    if ext in MARKDOWN_EXT:
        docs = _parse_text(path, "markdown")
    elif ext in TEXT_EXT:
        docs = _parse_text(path, "text")
    elif ext in HTML_EXT:
        docs = _parse_html(path)
    elif ext in PDF_EXT:
        docs = _parse_pdf(path)
    elif ext in CSV_EXT:
        docs = _parse_csv(path, **fields)
    elif ext in JSONL_EXT:
        docs = _parse_jsonl(path, **fields)
    else:
        raise IngestError(
            str(path), f"unsupported format {ext or '(no extension)'!r}: use one of {', '.join(SUPPORTED)}"
        )
    # A record may be a title alone; a file needs text (its name is not a passage).
    records = ext in CSV_EXT or ext in JSONL_EXT
    if not any(d.text.strip() or (records and d.title) for d in docs):
        raise IngestError(str(path), "no text found (the file is empty)")
    return docs


# -- chunking ------------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")


def _units(text: str, max_words: int) -> list[str]:
    """Paragraphs, split into sentences (then word runs) when longer than ``max_words``."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para.split()) <= max_words:
            out.append(para)
            continue
        for sent in _SENTENCE.split(para):
            words = sent.split()
            for i in range(0, len(words), max_words):
                out.append(" ".join(words[i : i + max_words]))
    return out


def chunk(text: str, words: int = CHUNK_WORDS, overlap: int = OVERLAP_WORDS) -> list[str]:
    """Passages of about ``words`` words; each starts with the last units (≤ ``overlap`` words)
    of the one before, so a fact on a boundary is whole in at least one passage. A Markdown
    heading starts a new passage once the current one is a third full."""
    units = _units(text, words)
    chunks: list[str] = []
    cur: list[str] = []
    cur_words = 0
    fresh = 0  # units in cur that are not overlap from the previous passage
    for u in units:
        n = len(u.split())
        starts_section = bool(_HEADING.match(u)) and cur_words >= words // 3
        if cur and fresh and (cur_words + n > words or starts_section):
            chunks.append("\n\n".join(cur))
            carry: list[str] = []
            carried = 0
            if not starts_section:
                for prev in reversed(cur):
                    m = len(prev.split())
                    if carried + m > overlap:
                        break
                    carry.insert(0, prev)
                    carried += m
            cur, cur_words, fresh = carry, carried, 0
        cur.append(u)
        cur_words += n
        fresh += 1
    if cur and fresh:
        chunks.append("\n\n".join(cur))
    return chunks


# -- writing -------------------------------------------------------------------------------


def _doc_id(namespace: str, doc: Document, text_hash: str) -> str:
    ident = f"{namespace}\x00{doc.external_id or doc.path}\x00{text_hash}"
    return "doc_" + hashlib.sha256(ident.encode()).hexdigest()[:16]


@dataclass
class _Pending:
    source: str
    doc: Document
    doc_id: str
    text_hash: str
    passages: list[str]


@dataclass
class _Tally:
    documents: int = 0
    passages: int = 0
    duplicates: int = 0
    unchanged: int = 0
    replaced: bool = False


def ingest(
    sources: Any,
    store: Store | str | Path | None = None,
    namespace: str = "shared",
    *,
    id_field: str | None = None,
    text_field: str | None = None,
    title_field: str | None = None,
    embedder: Embedder | None = None,
    chunk_words: int = CHUNK_WORDS,
    overlap: int = OVERLAP_WORDS,
    batch_passages: int = 256,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    on_commit: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest files, directories or DataFrames into ``store`` (the default store if None).

    Returns an IngestReport; a source that fails is listed in ``report.failed`` with the
    reason, and the rest are ingested. Small sources share batches and a large one spans
    several (``batch_passages`` at first, more when embedding is fast: see ``_next_batch``).
    ``on_commit(total_passages)`` is called after each committed batch. With ``progress``, a
    bar on a terminal or in a notebook, else a line every few seconds on stderr (a log)."""
    from ..errors import ConfigError
    from ..paradigms import check_namespace

    check_namespace(namespace)
    if chunk_words < 1 or overlap < 0:
        raise ConfigError(f"chunk_words={chunk_words}, overlap={overlap}: give chunk_words ≥ 1 and overlap ≥ 0")
    if getattr(store, "is_postgres", False):  # staged in DuckDB, then copied (pg_ingest.py)
        from .pg_ingest import ingest_via_staging

        return ingest_via_staging(sources, store, namespace, id_field=id_field, text_field=text_field,
                                  title_field=title_field, embedder=embedder, chunk_words=chunk_words,
                                  overlap=overlap, batch_passages=batch_passages, metadata=metadata,
                                  progress=progress, on_commit=on_commit)
    store = store if isinstance(store, Store) else Store(store)  # None → the default store
    embedder = embedder or get_embedder()
    started = time.perf_counter()
    fields = {"id_field": id_field, "text_field": text_field, "title_field": title_field}
    tallies: dict[str, _Tally] = {}
    failed: list[IngestError] = []
    queue: list[_Pending] = []
    state = {"committed": 0, "base": batch_passages}
    bar = Progress("ingesting", "passage", enabled=progress)

    def flush() -> None:
        _write_queue(store, embedder, queue, namespace, batch_passages, metadata or {}, bar,
                     tallies, state, on_commit)
        queue.clear()

    try:
        for source in expand(sources):
            name = str(source) if isinstance(source, (str, Path)) else "dataframe"
            try:
                docs = parse(source, **fields)
            except IngestError as exc:
                log.info("ingest failed: %s", exc)
                failed.append(exc)
                continue
            tallies.setdefault(name, _Tally())
            for d in docs:
                h = content_hash(d.title + "\n" + d.text)
                passages = chunk(d.text, chunk_words, overlap) or ([d.title] if d.title else [])
                queue.append(_Pending(name, d, _doc_id(namespace, d, h), h, passages))
            if sum(len(p.passages) for p in queue) >= 4 * batch_passages:
                flush()
        if queue:
            flush()
    finally:
        bar.close()
    if state["committed"]:
        _update_indexes(store, embedder)
    ok = []
    for name, t in tallies.items():
        status = "replaced" if t.replaced else ("unchanged" if t.documents == 0 and t.unchanged else "ingested")
        ok.append(FileResult(name, status, t.documents, t.passages, t.duplicates))
    return IngestReport(tuple(ok), tuple(failed), namespace, time.perf_counter() - started)


_SINGLE_DOC_FORMATS = ("text", "markdown", "html", "pdf")


def _write_queue(
    store: Store,
    embedder: Embedder,
    queue: list[_Pending],
    namespace: str,
    batch_passages: int,
    extra_meta: dict[str, Any],
    bar: Progress,
    tallies: dict[str, _Tally],
    state: dict[str, int],
    on_commit: Callable[[int], None] | None,
) -> None:
    """Look up what is already stored (one connection), then embed and commit in batches; a
    large document spans several batches."""
    state.setdefault("batch", batch_passages)
    hashes = sorted({content_hash(t) for p in queue for t in p.passages})
    files = sorted({p.doc.path for p in queue if p.doc.format in _SINGLE_DOC_FORMATS})
    with store.connect() as con:
        # a document left incomplete by an interrupted ingest is not "known": it is resumed
        known = {
            r[0]
            for r in con.execute(
                "SELECT id FROM documents WHERE complete AND id IN (SELECT unnest(?))",
                [[p.doc_id for p in queue]],
            ).fetchall()
        }
        # an earlier version of a file (same path, other text) is replaced by this one
        old_by_path: dict[str, list[str]] = {}
        for doc_id, path in con.execute(
            "SELECT id, path FROM documents WHERE namespace = ? AND path IN (SELECT unnest(?))",
            [namespace, files],
        ).fetchall():
            old_by_path.setdefault(path, []).append(doc_id)
        have = {
            r[0]
            for r in con.execute(
                "SELECT content_hash FROM memories WHERE namespace = ? AND content_hash IN (SELECT unnest(?))",
                [namespace, hashes],
            ).fetchall()
        }
    todo = []
    for p in queue:
        if p.doc_id in known:
            tallies[p.source].unchanged += 1
        else:
            todo.append(p)
    bar.add_total(sum(len(p.passages) for p in todo))
    batch: list[_Slice] = []
    size = 0
    for p in todo:
        start = 0
        while start < len(p.passages):
            end = min(len(p.passages), start + state["batch"] - size)
            batch.append(_Slice(p, start, end))
            size += end - start
            start = end
            if size >= state["batch"]:
                _commit(store, embedder, batch, namespace, extra_meta, old_by_path, have, bar,
                        tallies, state, on_commit)
                batch, size = [], 0
    if batch:
        _commit(store, embedder, batch, namespace, extra_meta, old_by_path, have, bar, tallies,
                state, on_commit)


@dataclass(frozen=True)
class _Slice:
    """Passages ``start:end`` of one pending document: its share of one batch."""

    p: _Pending
    start: int
    end: int

    @property
    def last(self) -> bool:
        return self.end == len(self.p.passages)


def _commit(
    store: Store,
    embedder: Embedder,
    batch: list[_Slice],
    namespace: str,
    extra_meta: dict[str, Any],
    old_by_path: dict[str, list[str]],
    have: set[str],
    bar: Progress,
    tallies: dict[str, _Tally],
    state: dict[str, int],
    on_commit: Callable[[int], None] | None,
) -> None:
    check_cancelled()
    replace: list[str] = []
    for sl in batch:
        q = sl.p
        if sl.last and q.doc.format in _SINGLE_DOC_FORMATS:
            # the old version goes in the commit that completes the new one: an interrupted
            # re-ingest of a changed file leaves the old version whole
            olds = [d for d in old_by_path.pop(q.doc.path, []) if d != q.doc_id]
            if olds:
                replace.extend(olds)
                tallies[q.source].replaced = True
    t = time.perf_counter()
    added, per_source, embedded = _commit_batch(
        store, embedder, batch, namespace, extra_meta, replace, have
    )
    state["batch"] = _next_batch(state["batch"], state["base"], embedded, time.perf_counter() - t)
    for sl in batch:
        if sl.last:
            tallies[sl.p.source].documents += 1
    for src, (a, dup) in per_source.items():
        tallies[src].passages += a
        tallies[src].duplicates += dup
    state["committed"] += added
    bar.update(sum(sl.end - sl.start for sl in batch))
    if on_commit:
        on_commit(state["committed"])


COMMIT_EVERY = 2.0  # seconds of work per commit, when passages embed fast (see _next_batch)
MAX_BATCH_FACTOR = 32


def _next_batch(size: int, base: int, embedded: int, seconds: float) -> int:
    """The next batch's size: ``base`` passages while embedding is slow (the local model, a
    few seconds a batch), grown to about COMMIT_EVERY seconds of work when it is fast. Each
    commit opens the store and checkpoints it (~0.1 s), which would dominate a fast embedder;
    the store is not held between commits, so other kernels can use it."""
    if embedded < base // 2 or seconds <= 0:  # mostly already stored: says little of the rate
        return size
    fit = int(embedded / seconds * COMMIT_EVERY) // base * base
    return max(base, min(fit, MAX_BATCH_FACTOR * base))


def _commit_batch(
    store: Store,
    embedder: Embedder,
    batch: list[_Slice],
    namespace: str,
    extra_meta: dict[str, Any],
    replace_docs: list[str],
    have: set[str],
) -> tuple[int, dict[str, tuple[int, int]], int]:
    """Embed the batch's new passages and commit them with their documents' rows and which
    passages each document holds (a document is ``complete`` once its last slice is in).
    Returns the passages added, (added, duplicates) per source, and how many were embedded."""
    records: list[tuple[str, MemoryRecord]] = []
    for sl in batch:
        p = sl.p
        for i in range(sl.start, sl.end):
            meta = {
                "path": p.doc.path,
                "format": p.doc.format,
                "chunk": i,
                "chunks": len(p.passages),
                **p.doc.metadata,
                **extra_meta,
            }
            if p.doc.external_id is not None:
                meta["external_id"] = p.doc.external_id
            records.append(
                (
                    p.source,
                    MemoryRecord(
                        id=new_id("m_"), namespace=namespace, memory_type="semantic",
                        content=p.passages[i], source="document", title=p.doc.title, metadata=meta,
                        importance=0.5, document_id=p.doc_id,
                    ),
                )
            )
    # passages the namespace already holds are not embedded again (re-runs, duplicates)
    fresh: list[tuple[str, MemoryRecord]] = []
    hashes = [content_hash(r.content) for _, r in records]
    for (src, r), h in zip(records, hashes):
        if h not in have:
            fresh.append((src, r))
            have.add(h)
    vecs = embedder.embed([embed_text(r.title, r.content) for _, r in fresh]) if fresh else None
    check_cancelled()
    import pyarrow as pa

    now = utcnow()
    docs = list({sl.p.doc_id: sl for sl in batch}.values())  # a document's slice in this batch
    with store.transaction() as con:
        inserted = set(
            store.insert_memories(con, [r for _, r in fresh], vecs, model=embedder.name) if fresh else []
        )
        per_source: dict[str, tuple[int, int]] = {}
        for src, r in records:
            a, dup = per_source.get(src, (0, 0))
            per_source[src] = (a + 1, dup) if r.id in inserted else (a, dup + 1)
        table = pa.table(
            {
                "id": [sl.p.doc_id for sl in docs],
                "path": [sl.p.doc.path for sl in docs],
                "title": [sl.p.doc.title for sl in docs],
                "format": [sl.p.doc.format for sl in docs],
                "content_hash": [sl.p.text_hash for sl in docs],
                "metadata": [
                    json.dumps({**sl.p.doc.metadata, "passages": len(sl.p.passages)}) for sl in docs
                ],
                "created_at": pa.array([now] * len(docs), type=pa.timestamp("us")),
                "namespace": [namespace] * len(docs),
                "external_id": pa.array([sl.p.doc.external_id for sl in docs], type=pa.string()),
                "complete": pa.array([sl.last for sl in docs], type=pa.bool_()),
            }
        )
        refs = pa.table(
            {
                "document_id": [r.document_id for _, r in records],
                "content_hash": hashes,
            }
        )
        con.register("_docs_in", table)
        con.register("_refs_in", refs)
        try:
            con.execute(
                """INSERT INTO documents (id, path, title, format, content_hash, metadata, created_at,
                                          namespace, external_id, chunk_count, complete)
                   SELECT id, path, title, format, content_hash, metadata::JSON, created_at,
                          namespace, external_id, 0, complete FROM _docs_in
                   ON CONFLICT (id) DO UPDATE SET complete = excluded.complete"""
            )
            # every passage a document holds, newly stored or already there (identical text is
            # stored once per namespace and held by each document that has it)
            con.execute(
                """INSERT INTO document_passages
                   SELECT DISTINCT r.document_id, m.id FROM _refs_in r
                   JOIN memories m ON m.content_hash = r.content_hash AND m.namespace = ?
                   ON CONFLICT DO NOTHING""",
                [namespace],
            )
        finally:
            con.unregister("_docs_in")
            con.unregister("_refs_in")
        if replace_docs:
            store.remove_documents(con, replace_docs)
        recount(con, [sl.p.doc_id for sl in docs])
    return len(inserted), per_source, len(fresh)


def _update_indexes(store: Store, embedder: Embedder) -> None:
    """Bring the derived indexes up to date now and save them, so the next search (in this
    process or another) does not pay for the catch-up."""
    si = open_indexes(store)
    dim = getattr(embedder, "dim", 0) or 0
    try:
        with si.lock:
            if dim:
                si.vector_index(store, embedder.name, dim)
            si.flush()
    except (OSError, RuntimeError) as exc:  # faiss reports a failed write as RuntimeError
        if disk_full(store.path, exc) is None:
            raise
        raise StoreFull(
            f"no space left on device while saving the search index beside {store.path}: every "
            "passage is stored; free some space, and the next search rebuilds the index."
        ) from exc
