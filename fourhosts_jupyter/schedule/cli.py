"""``fourhosts batch``: research the questions of a file, resumable, within a budget.

    fourhosts batch questions.csv --column question --out results.parquet --concurrency 8
    fourhosts batch --resume b_… [--retry-failed] [--budget-tokens N]
    fourhosts batch --list [--json]
    fourhosts batch questions.csv --workers --store postgresql://…   (answered by `fourhosts worker`)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..errors import ConfigError, FourHostsError


def usd_amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD, e.g. 0.50") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give an amount in USD ≥ 0")
    return value


def token_count(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a number of tokens ≥ 0")
    return value


def add_budget_args(p: argparse.ArgumentParser, scope: str = "run") -> None:
    p.add_argument("--budget-tokens", type=token_count, metavar="N",
                   help=f"most tokens this {scope} may use; a model call that would pass it is refused before it is made")
    p.add_argument("--budget-usd", type=usd_amount, metavar="X",
                   help=f"most USD this {scope} may cost (needs the model's price)")


def cmd_batch(args: argparse.Namespace) -> int:
    from ..cli import _check_options, _settings

    if args.list:
        return _list(args)
    if args.compare:
        from .batch import compare_hosts

        compare_hosts(args.compare)  # a bad host name: one line, before anything runs
    if args.resume and args.file:
        raise ConfigError("give a FILE or --resume BATCH_ID, not both")
    if not args.resume and not args.file:
        raise ConfigError("give a FILE of questions (CSV, Parquet or JSONL), --resume BATCH_ID or --list")
    _check_options(args)
    from .batch_io import check_output, read_table, questions_from

    check_output(args.out)
    questions = None
    if args.file:
        questions = questions_from(read_table(args.file), args.column, source=args.file)
    from ..engine import Engine  # heavy: after the checks
    from .batch import batch

    engine = Engine(_settings(args, api=args.api))
    options: dict[str, Any] = {k: getattr(args, k) for k in ("paradigm", "effort", "model", "base_url")
                               if getattr(args, k) is not None}
    df = batch(questions, engine=engine, concurrency=args.concurrency, budget_tokens=args.budget_tokens,
               budget_usd=args.budget_usd, resume=args.resume, retry_failed=args.retry_failed,
               source=args.file, column=args.column, progress=not args.quiet, compare=args.compare,
               on_start=lambda bid: print(f"batch {bid}", file=sys.stderr, flush=True),
               **({"workers": True} if args.workers else {}), **options)
    if args.out:
        from .batch_io import write_table

        write_table(df, args.out)
    a = df.attrs
    print(f"batch {a['batch_id']}: {a['state']} · {a['counts']}" + (f" → {args.out}" if args.out else ""))
    if a["state"] == "stopped":
        raise FourHostsError(f"batch {a['batch_id']} stopped: {a['note']}; resume it with "
                             f"fourhosts batch --resume {a['batch_id']} --budget-tokens N")
    if a["state"] == "failed":
        raise FourHostsError(f"batch {a['batch_id']}: {a['note']} "
                             f"(fourhosts batch --resume {a['batch_id']} --retry-failed)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..cli import _existing_store
    from .batch_store import batch_rows

    store = _existing_store(args)
    found = batch_rows(store).list() if store is not None else []
    if args.json:
        for b in found:
            print(json.dumps(b.to_dict(), ensure_ascii=False))
        return 0
    if not found:
        print("no batches yet: try  fourhosts batch questions.csv --column question")
        return 0
    from ..redact import neutralise

    print(f"{'id':20}  {'state':11}  {'done':>5}  {'failed':>6}  {'left':>5}  source")
    for b in found:
        print(f"{b.id:20}  {b.state:11}  {b.done:5}  {b.failed:6}  {b.left:5}  {neutralise(b.source, limit=60)}")
    return 0


def add_parsers(sub: Any) -> None:
    from ..cli import _store_arg
    from ..cli_args import positive_int

    p = sub.add_parser("batch", help="research every question of a CSV, Parquet or JSONL file")
    p.add_argument("file", nargs="?", help="the questions: .csv, .parquet or .jsonl")
    p.add_argument("--column", help="the column holding the questions (needed with several columns)")
    p.add_argument("-o", "--out", metavar="PATH", help="write the results: .parquet, .csv or .jsonl")
    p.add_argument("-c", "--concurrency", type=positive_int, default=8, metavar="N",
                   help="questions researched at once (default 8)")
    add_budget_args(p, "batch")
    p.add_argument("--resume", metavar="BATCH_ID", help="finish what a stopped batch left")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: run the failed items again")
    p.add_argument("--list", action="store_true", help="list batches and their state")
    p.add_argument("--json", action="store_true", help="with --list: one JSON object per batch")
    p.add_argument("--compare", nargs="?", const="all", metavar="HOSTS",
                   help="every host answers each question (or HOSTS, e.g. dolores,bernard): one row per question per host")
    p.add_argument("--workers", action="store_true",
                   help="queue the items for `fourhosts worker` processes (a postgresql:// --store) and follow "
                        "them; each worker answers --concurrency of its own at once")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-p", "--paradigm", help="force a host: dolores, teddy, bernard or maeve")
    p.add_argument("-e", "--effort", help="low, medium or high")
    p.add_argument("-m", "--model", help="model or deployment name")
    p.add_argument("--base-url", help="an OpenAI-compatible server")
    p.add_argument("--api", choices=("chat", "responses"), help="the OpenAI API to use")
    _store_arg(p)
    p.set_defaults(func=cmd_batch)
