"""``fourhosts ingest`` and ``fourhosts search``: memory from the command line.

``fourhosts search --json`` prints one JSON object per hit (id, score, text, source, …), so
retrieval can be evaluated from outside; ``--queries FILE`` runs a whole JSONL query file in
one process (loading the model once) and adds ``query_id`` and ``rank`` to each line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli_args import hit_count, positive_int, weights
from ..errors import ConfigError
from ..paradigms import check_namespace
from .origins import display_origin


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("ingest", help="add documents (txt, md, html, pdf, csv, jsonl) to memory")
    p.add_argument("files", nargs="+", metavar="FILE", help="files, directories or globs")
    _common(p)
    p.add_argument("--namespace", default="shared",
                   help="host namespace (dolores, teddy, bernard, maeve) or shared (default)")
    p.add_argument("--id-field", help="CSV/JSONL field holding each document's id")
    p.add_argument("--text-field", help="CSV/JSONL field holding the text (default: text, content, body…)")
    p.add_argument("--title-field", help="CSV/JSONL field holding the title (default: title if present)")
    p.add_argument("--chunk-words", type=positive_int, default=None, help="words per passage (default 160)")
    p.add_argument("--quiet", action="store_true", help="no progress (bar or log lines)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="search memory (hybrid dense + BM25)")
    p.add_argument("query", nargs="?", help="the query (or use --queries)")
    _common(p)
    p.add_argument("--k", type=hit_count, default=10, help="hits to return (default 10, at most 10,000)")
    p.add_argument("--json", action="store_true", help="one JSON object per hit")
    p.add_argument("--mode", choices=("hybrid", "dense", "bm25"), default="hybrid")
    p.add_argument("--weights", metavar="DENSE,KEYWORD", type=weights,
                   help="RRF weights, e.g. 0.6,0.4 (the original's); default 0.5,0.5")
    p.add_argument("--host", help="boost sources this host prefers (dolores, teddy, bernard, maeve)")
    p.add_argument("--namespace", action="append", dest="namespaces",
                   help="only these namespaces (repeatable)")
    p.add_argument("--mmr", action="store_true", help="diversify the hits with MMR (λ = 0.5)")
    p.add_argument("--queries", metavar="FILE",
                   help="JSONL of queries ({'_id' or 'id', 'text' or 'query'}); prints query_id and rank")
    p.set_defaults(func=cmd_search)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH",
                   help="the DuckDB store file (default: $FOURHOSTS_HOME/store.duckdb)")
    p.add_argument("--embedder", choices=("local", "hashing", "openai", "azure"),
                   help="embedding model tier (default: local, else hashing; FOURHOSTS_EMBEDDER)")


def _store(args: argparse.Namespace, *, must_exist: bool) -> Any:
    from .backends import is_postgres, open_store
    from .store import Store, default_store_path

    if args.store and is_postgres(args.store):
        return open_store(args.store)
    path = Path(args.store).expanduser() if args.store else default_store_path()
    if must_exist and not path.exists():
        raise ConfigError(f"no store at {path}: ingest documents first (fourhosts ingest --store {path} FILES…)")
    return Store(path)


def _embedder(args: argparse.Namespace) -> Any:
    from .embeddings import get_embedder

    return get_embedder(args.embedder)


def _sources(files: list[str]) -> list[Path]:
    """Every argument checked before the store or a model is opened: a missing path, or a glob
    or directory that matches no supported file, is one error naming it."""
    from .sources import SUPPORTED, expand

    out: list[Path] = []
    for arg in files:
        p = Path(arg).expanduser()
        found = expand([arg])
        if p.is_dir() and not found:
            problem = "the directory holds no file that can be ingested"
        elif not found:
            problem = "the pattern matches no file"
        elif found == [p] and not p.exists():
            problem = "no such file or directory"
        elif found == [p] and p.is_file() and p.stat().st_size == 0:
            problem = "the file is empty"
        else:
            out.extend(found)
            continue
        raise ConfigError(f"{arg!r}: {problem} (supported: {', '.join(SUPPORTED)})")
    return out


def cmd_ingest(args: argparse.Namespace) -> int:
    namespace = check_namespace(args.namespace)
    sources = _sources(args.files)
    from .ingest import CHUNK_WORDS, OVERLAP_WORDS, ingest  # heavy: after the checks

    words = args.chunk_words or CHUNK_WORDS
    report = ingest(
        sources,
        _store(args, must_exist=False),
        namespace,
        id_field=args.id_field,
        text_field=args.text_field,
        title_field=args.title_field,
        embedder=_embedder(args),
        chunk_words=words,
        overlap=min(OVERLAP_WORDS, words // 4),
        progress=not args.quiet,  # a bar on a terminal, a line every few seconds in a log
    )
    print(report)
    return 1 if report.failed else 0


def cmd_search(args: argparse.Namespace) -> int:
    if not (args.query or "").strip() and not args.queries:
        raise ConfigError("give a query, or --queries FILE")
    if args.host:
        from ..paradigms import HostParadigm

        HostParadigm.parse(args.host)
    for ns in args.namespaces or ():
        check_namespace(ns)
    queries = _read_queries(args.queries) if args.queries else []
    store = _store(args, must_exist=True)
    from ..context.select import DEFAULT_WEIGHTS, MMR_LAMBDA, search  # heavy: after the checks

    embedder = _embedder(args) if args.mode != "bm25" else None
    opts = dict(
        k=args.k, mode=args.mode, host=args.host, namespaces=args.namespaces,
        weights=args.weights or DEFAULT_WEIGHTS,
        mmr_lambda=MMR_LAMBDA if args.mmr else None, embedder=embedder,
    )
    out = sys.stdout
    if args.queries:
        for qid, text in queries:
            for rank, hit in enumerate(search(store, text, **opts), 1):
                out.write(json.dumps({"query_id": qid, "rank": rank, **hit.to_json()}, allow_nan=False) + "\n")
        return 0
    hits = search(store, args.query, **opts)
    for rank, hit in enumerate(hits, 1):
        if args.json:
            out.write(json.dumps(hit.to_json(), allow_nan=False) + "\n")
        else:
            line = " ".join(hit.text.split())
            out.write(f"{rank:>2}. {hit.score:.4f}  {hit.title[:60]}  [{hit.to_json()['id']}]\n"
                      f"    {display_origin(hit.origin)}\n    {line[:150]}\n")
    if not hits and not args.json:
        out.write("no matches\n")
    return 0


def _read_queries(path: str) -> list[tuple[str, str]]:
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read --queries {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"--queries {path} is not UTF-8 text: save it as UTF-8 JSONL") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--queries {path} line {n}: invalid JSON ({exc.msg})") from exc
        if not isinstance(rec, dict):
            raise ConfigError(f"--queries {path} line {n}: not a JSON object; write one "
                              '{"id": …, "text": …} object per line')
        qid = rec.get("_id", rec.get("id", rec.get("query_id", str(n))))
        text = rec.get("text", rec.get("query"))
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"--queries {path} line {n}: no 'text' or 'query' string")
        out.append((str(qid), str(text)))
    return out
