"""Document ingestion: files (text, Markdown, HTML, PDF, CSV, JSONL) and DataFrames → passages.

``ingest(paths_or_dataframe, store=None, namespace="shared")`` parses each source, splits the
text into overlapping passages, skips passages already stored in the namespace (content hash),
embeds the rest in batches and commits each batch in one transaction together with its
documents' rows, so a process killed mid-way keeps every finished batch and leaves no half
document; running the same ingest again carries on where it stopped.

A file that cannot be read fails alone: the report names it and the reason, the other files
continue. Nothing is rendered: text from documents is data, never HTML.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import IngestError
from .embeddings import Embedder, get_embedder
from .retriever import embed_text, open_indexes
from .store import MemoryRecord, Store, content_hash, new_id, utcnow

log = logging.getLogger(__name__)

TEXT_EXT = {".txt", ".text", ".rst", ".log"}
MARKDOWN_EXT = {".md", ".markdown", ".mdown"}
HTML_EXT = {".html", ".htm", ".xhtml"}
PDF_EXT = {".pdf"}
CSV_EXT = {".csv", ".tsv"}
JSONL_EXT = {".jsonl", ".ndjson"}
SUPPORTED = sorted(TEXT_EXT | MARKDOWN_EXT | HTML_EXT | PDF_EXT | CSV_EXT | JSONL_EXT)

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
    if not any(d.text.strip() or d.title for d in docs):
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


def _expand(sources: Any) -> list[Any]:
    """Paths (files, directories, globs) and DataFrames → a flat list of sources."""
    pd = sys.modules.get("pandas")  # a DataFrame implies pandas is already imported
    if pd is not None and isinstance(sources, pd.DataFrame):
        return [sources]
    if isinstance(sources, (str, Path)):
        sources = [sources]
    out: list[Any] = []
    for s in sources:
        if isinstance(s, (str, Path)):
            p = Path(s).expanduser()
            if p.is_dir():
                out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED))
            elif not p.exists() and any(ch in str(s) for ch in "*?["):
                root = p.anchor if p.is_absolute() else "."
                pattern = str(p.relative_to(root)) if p.is_absolute() else str(s)
                out.extend(sorted(Path(root).glob(pattern)))
            else:
                out.append(p)
        else:
            out.append(s)
    return out


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
    reason, and the rest are ingested. Small sources share batches; a document never spans
    two batches. ``on_commit(total_passages)`` is called after each committed batch."""
    from tqdm.auto import tqdm

    from ..paradigms import HOSTS

    valid = {h.value for h in HOSTS} | {"shared"}
    if namespace not in valid:
        from ..errors import ConfigError

        raise ConfigError(f"unknown namespace {namespace!r}: use one of {', '.join(sorted(valid))}")
    store = store if isinstance(store, Store) else Store(store)  # None → the default store
    embedder = embedder or get_embedder()
    started = time.perf_counter()
    fields = {"id_field": id_field, "text_field": text_field, "title_field": title_field}
    tallies: dict[str, _Tally] = {}
    failed: list[IngestError] = []
    queue: list[_Pending] = []
    state = {"committed": 0}
    bar = tqdm(total=0, desc="ingesting", unit="passage", disable=not progress, leave=False)

    def flush() -> None:
        _write_queue(store, embedder, queue, namespace, batch_passages, metadata or {}, bar,
                     tallies, state, on_commit)
        queue.clear()

    try:
        for source in _expand(sources):
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
    bar: Any,
    tallies: dict[str, _Tally],
    state: dict[str, int],
    on_commit: Callable[[int], None] | None,
) -> None:
    """Look up what is already stored (one connection), then embed and commit in batches."""
    hashes = sorted({content_hash(t) for p in queue for t in p.passages})
    files = sorted({p.doc.path for p in queue if p.doc.format in _SINGLE_DOC_FORMATS})
    with store.connect() as con:
        known = {
            r[0]
            for r in con.execute(
                "SELECT id FROM documents WHERE id IN (SELECT unnest(?))", [[p.doc_id for p in queue]]
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
    bar.total += sum(len(p.passages) for p in todo)
    bar.refresh()
    batch: list[_Pending] = []
    size = 0
    for i, p in enumerate(todo):
        batch.append(p)
        size += len(p.passages)
        if size < batch_passages and i < len(todo) - 1:
            continue
        replace: list[str] = []
        for q in batch:
            if q.doc.format in _SINGLE_DOC_FORMATS:
                olds = [d for d in old_by_path.pop(q.doc.path, []) if d != q.doc_id]
                if olds:
                    replace.extend(olds)
                    tallies[q.source].replaced = True
        added, per_source = _commit_batch(store, embedder, batch, namespace, extra_meta, replace, have)
        for q in batch:
            tallies[q.source].documents += 1
        for src, (a, dup) in per_source.items():
            tallies[src].passages += a
            tallies[src].duplicates += dup
        state["committed"] += added
        bar.update(size)
        if on_commit:
            on_commit(state["committed"])
        batch, size = [], 0


def _commit_batch(
    store: Store,
    embedder: Embedder,
    batch: list[_Pending],
    namespace: str,
    extra_meta: dict[str, Any],
    replace_docs: list[str],
    have: set[str],
) -> tuple[int, dict[str, tuple[int, int]]]:
    """Embed the batch's new passages and commit them with their documents' rows."""
    records: list[tuple[str, MemoryRecord]] = []
    for p in batch:
        for i, text in enumerate(p.passages):
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
                        id=new_id("m_"), namespace=namespace, memory_type="semantic", content=text,
                        source="document", title=p.doc.title, metadata=meta, importance=0.5,
                        document_id=p.doc_id,
                    ),
                )
            )
    # passages the namespace already holds are not embedded again (re-runs, duplicates)
    fresh: list[tuple[str, MemoryRecord]] = []
    for src, r in records:
        h = content_hash(r.content)
        if h not in have:
            fresh.append((src, r))
            have.add(h)
    vecs = embedder.embed([embed_text(r.title, r.content) for _, r in fresh]) if fresh else None
    import pyarrow as pa

    now = utcnow()
    with store.transaction() as con:
        if replace_docs:
            con.execute("DELETE FROM memories WHERE document_id IN (SELECT unnest(?))", [replace_docs])
            con.execute("DELETE FROM documents WHERE id IN (SELECT unnest(?))", [replace_docs])
        inserted = set(
            store.insert_memories(con, [r for _, r in fresh], vecs, model=embedder.name) if fresh else []
        )
        per_doc: dict[str, int] = {}
        per_source: dict[str, tuple[int, int]] = {}
        for src, r in records:
            a, dup = per_source.get(src, (0, 0))
            if r.id in inserted:
                per_doc[r.document_id or ""] = per_doc.get(r.document_id or "", 0) + 1
                per_source[src] = (a + 1, dup)
            else:
                per_source[src] = (a, dup + 1)
        table = pa.table(
            {
                "id": [p.doc_id for p in batch],
                "path": [p.doc.path for p in batch],
                "title": [p.doc.title for p in batch],
                "format": [p.doc.format for p in batch],
                "content_hash": [p.text_hash for p in batch],
                "metadata": [json.dumps({**p.doc.metadata, "passages": len(p.passages)}) for p in batch],
                "created_at": pa.array([now] * len(batch), type=pa.timestamp("us")),
                "namespace": [namespace] * len(batch),
                "external_id": pa.array([p.doc.external_id for p in batch], type=pa.string()),
                "chunk_count": pa.array([per_doc.get(p.doc_id, 0) for p in batch], type=pa.int32()),
            }
        )
        con.register("_docs_in", table)
        try:
            con.execute(
                """INSERT INTO documents (id, path, title, format, content_hash, metadata, created_at,
                                          namespace, external_id, chunk_count)
                   SELECT id, path, title, format, content_hash, metadata::JSON, created_at,
                          namespace, external_id, chunk_count FROM _docs_in
                   ON CONFLICT (id) DO NOTHING"""
            )
        finally:
            con.unregister("_docs_in")
    return len(inserted), per_source


def _update_indexes(store: Store, embedder: Embedder) -> None:
    """Bring the derived indexes up to date now and save them, so the next search (in this
    process or another) does not pay for the catch-up."""
    si = open_indexes(store)
    dim = getattr(embedder, "dim", 0) or 0
    with si.lock:
        if dim:
            si.vector_index(store, embedder.name, dim)
        si.flush()
