"""``fourhosts compare "question" [--hosts dolores,teddy] [--json] [--synthesize]``.

Without ``--json``: each host's answer under its own heading as it finishes (stdout), progress
on stderr, then the footer. With ``--json``: one JSON object per host as it finishes (host,
text, sources [{n, title, origin}], usage, seconds, status, run_id, error) and a final object
``{"summary": …}``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import FourHostsError
from .redact import redact, terminal_json


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("compare", help="the hosts answer one question side by side, at the same time")
    p.add_argument("question", nargs="+", help="the question")
    p.add_argument("--hosts", default=None, help="comma-separated hosts (default: all four), e.g. dolores,teddy")
    p.add_argument("-e", "--effort", help="low, medium or high")
    p.add_argument("-m", "--model", help="model or deployment name")
    p.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://localhost:11434/v1")
    p.add_argument("--api", choices=("chat", "responses"), help="the OpenAI API to use (default: chat)")
    p.add_argument("--synthesize", action="store_true", help="with a model: where the hosts agree / disagree")
    p.add_argument("--json", action="store_true", help="one JSON object per host, then the summary")
    p.add_argument("--store", metavar="PATH", help="the store: a DuckDB file or postgresql://… (default: $FOURHOSTS_HOME/store.duckdb)")
    p.set_defaults(func=cmd_compare)


def host_object(result: Any) -> dict[str, Any]:
    from .events import to_jsonable

    return {
        "host": result.host.value,
        "status": "ok" if result.ok else (result.kind or "failed"),
        "text": result.text,
        "sources": [{"n": s.n, "title": s.title, "origin": s.origin} for s in result.sources],
        "usage": to_jsonable(result.usage),
        "seconds": round(result.seconds, 3),
        "run_id": result.run_id,
        "error": redact(result.error) if result.error else None,
    }


def cmd_compare(args: argparse.Namespace) -> int:
    from .comparison import CompareFinished, parse_hosts
    from .config import Settings

    question = " ".join(args.question).strip()
    hosts = parse_hosts(args.hosts)  # a bad host is a usage error before anything loads
    from .engine import Engine

    engine = Engine(Settings.from_env(store_path=args.store, api=args.api))
    comparison = None
    for item in _stream(engine, question, hosts, args):
        if isinstance(item, CompareFinished):
            comparison = item.comparison
    if comparison is None:
        raise FourHostsError("the comparison ended early, before every host had finished")
    return 0 if comparison.answers else 1


def _stream(engine: Any, question: str, hosts: Any, args: argparse.Namespace) -> Any:
    from .comparison import CompareFinished, HostEvent, stream_compare
    from .events import AnswerReady, RunFailed
    from .jupyter.grid_footer import footer_text

    finished: set[str] = set()
    for item in stream_compare(engine, question, hosts, effort=args.effort, model=args.model,
                               base_url=args.base_url, synthesize=args.synthesize):  # fmt: skip
        if isinstance(item, HostEvent) and isinstance(item.event, (AnswerReady, RunFailed)):
            finished.add(item.host.value)
            if not args.json:
                print(f"[{len(finished)}/{len(hosts)}] {item.host.value} finished", file=sys.stderr, flush=True)
        if isinstance(item, CompareFinished):
            c = item.comparison
            if args.json:
                for h in c.hosts:
                    print(terminal_json(host_object(c.results[h])), flush=True)
                print(terminal_json({"summary": c.summary()}, default=str), flush=True)
            else:
                from .paradigms import PROFILES
                from .render import plain

                for h in c.hosts:
                    r = c.results[h]
                    print(f"## {PROFILES[h].emoji} {PROFILES[h].label} ({PROFILES[h].stance})\n")
                    print(plain(r.text).strip() if r.ok else f"(failed: {plain(redact(r.error))})")
                    print()
                print(footer_text(c.summary(), c.hosts))
        yield item
