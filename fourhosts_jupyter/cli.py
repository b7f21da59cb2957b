"""The ``fourhosts`` command: research, classify, runs, show, config (+ commands from modules).

Errors are one line on stderr and a non-zero exit: 2 for a usage mistake, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Sequence

from .errors import ConfigError, FourHostsError

# Modules that add their own subcommands: each has add_parsers(subparsers), and each parser it
# adds sets ``func`` (args -> exit code). Add a line here to register a module.
COMMAND_MODULES: list[str] = ["fourhosts_jupyter.sandbox.cli", "fourhosts_jupyter.memory.cli_commands"]


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH", help="the DuckDB store file (default: $FOURHOSTS_HOME/store.duckdb)")


def _settings(args: argparse.Namespace, **extra: Any):  # noqa: ANN202
    from .config import Settings

    return Settings.from_env(store_path=getattr(args, "store", None), **extra)


def cmd_research(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .events import RunFailed
    from .terminal import render

    question = " ".join(args.question).strip()
    engine = Engine(_settings(args, api=args.api))
    events = engine.stream(
        question, paradigm=args.paradigm, effort=args.effort, model=args.model, base_url=args.base_url
    )
    if args.json:
        final = None
        for ev in events:
            if ev.type in ("answer", "error"):
                final = ev
        if isinstance(final, RunFailed):
            raise FourHostsError(f"the run failed ({final.kind}): {final.error}")
        print(json.dumps(final.answer.to_dict(), ensure_ascii=False, indent=2))  # type: ignore[union-attr]
        return 0
    last = render(events)
    if isinstance(last, RunFailed):
        raise FourHostsError(f"the run failed ({last.kind}): {last.error}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from .classifier import classify
    from .terminal import host_bar

    questions = [" ".join(args.question)] if args.question else [l for l in sys.stdin.read().splitlines() if l.strip()]
    if not questions:
        raise ConfigError("no question given: pass one as an argument or one per line on standard input")
    for q in questions:
        c = classify(q, paradigm=args.paradigm)
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False), flush=True)
        else:
            print(q)
            print(host_bar(c))
            print(f"type {c.query_type} · phase {c.phase} · effort {c.effort}\n")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .memory.store import Store

    df = Store(_settings(args).resolved_store_path()).runs(limit=args.limit)
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
    elif df.empty:
        print("no runs yet: try  fourhosts research \"your question\"")
    else:
        import pandas as pd

        df["status"] = [_status(s, k) for s, k in zip(df["status"], df["error_kind"])]
        with pd.option_context("display.max_colwidth", 60, "display.width", 160):
            print(df[["id", "started_at", "status", "paradigm", "provider", "question"]].to_string(index=False))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .memory.store import Store

    run = Store(_settings(args).resolved_store_path()).get_run(args.run_id)
    if run is None:
        raise ConfigError(f"no run {args.run_id!r} in the store: list runs with  fourhosts runs")
    if args.json:
        print(json.dumps(run, default=str, ensure_ascii=False, indent=2))
        return 0
    status = _status(run["status"], run.get("error_kind"))
    api = (run.get("options") or {}).get("api")
    print(f"{run['id']}  {run['started_at']}  {status}  {run['paradigm']}  "
          f"{run['provider']}/{run['model']}" + (f" ({api} API)" if api else ""))
    print(f"Q: {run['question']}\n")
    print(run["answer"] or "")
    for s in run.get("sources") or []:
        print(f"[{s['n']}] {s['title']} — {s['origin']}")
    if run.get("error"):
        print(f"\nerror: {run['error']}")
    return 0


def _status(status: str, kind: str | None) -> str:
    """``failed (incomplete)``: a failed run with the kind its run log recorded."""
    return f"{status} ({kind})" if status == "failed" and isinstance(kind, str) and kind else status


def cmd_config(args: argparse.Namespace) -> int:
    from .config import key_status

    s = _settings(args)
    print(f"store     {s.resolved_store_path()}")
    print(f"provider  {s.provider or 'auto'}")
    print(f"model     {s.model or '(provider default)'}")
    print(f"api       {s.api}")
    for name, present in key_status().items():
        print(f"{name:22} {'✅ set' if present else '❌ not set'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fourhosts", description="The Four Hosts research assistant.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("research", help="research a question and stream the answer")
    p.add_argument("question", nargs="+", help="the question")
    p.add_argument("-p", "--paradigm", help="force a host: dolores, teddy, bernard or maeve")
    p.add_argument("-e", "--effort", help="low, medium or high")
    p.add_argument("-m", "--model", help="model or deployment name")
    p.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://localhost:11434/v1")
    p.add_argument("--api", choices=("chat", "responses"),
                   help="the OpenAI API to use: chat (Chat Completions) or responses (default: $FOURHOSTS_API or chat)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON at the end")
    _store_arg(p)
    p.set_defaults(func=cmd_research)

    p = sub.add_parser("classify", help="classify questions (one per line on stdin if none given)")
    p.add_argument("question", nargs="*")
    p.add_argument("-p", "--paradigm", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="one JSON object per question")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("runs", help="list past runs")
    p.add_argument("-n", "--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    _store_arg(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="show a past run")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    _store_arg(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("config", help="show the settings (never the keys)")
    _store_arg(p)
    p.set_defaults(func=cmd_config)

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"fourhosts: error: {exc}", file=sys.stderr)
        return 2
    except FourHostsError as exc:
        print(f"fourhosts: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fourhosts: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
