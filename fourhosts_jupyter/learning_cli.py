"""``fourhosts rate`` and ``fourhosts insights``: the analyst's ratings from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .errors import ConfigError


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("rate", help="rate a past run 1-5 (learning adjusts routing by ratings)")
    p.add_argument("run_id")
    p.add_argument("rating", help="a whole number from 1 to 5")
    p.add_argument("note", nargs="*", help="an optional note")
    _store(p)
    p.set_defaults(func=cmd_rate)

    p = sub.add_parser("insights", help="per-host ratings, success rate, patterns and trend")
    p.add_argument("--json", action="store_true", help="one JSON object per host")
    _store(p)
    p.set_defaults(func=cmd_insights)


def _store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH", help="the store: a DuckDB file or postgresql://… (default: $FOURHOSTS_HOME/store.duckdb)")


def _existing(args: argparse.Namespace) -> Any:
    from .config import Settings
    from .memory.backends import is_postgres, open_store

    path = Settings.from_env(store_path=args.store).resolved_store_path()
    if not is_postgres(path) and not path.exists():
        raise ConfigError(f"no store at {path}: research a question first (fourhosts research \"…\")")
    return open_store(path)


def cmd_rate(args: argparse.Namespace) -> int:
    from .learning import rate

    if args.rating.strip() not in {"1", "2", "3", "4", "5"}:  # before the store is opened
        raise ConfigError(f"rating {args.rating!r} is out of range: give a whole number from 1 to 5")
    run_id = rate(_existing(args), args.run_id, args.rating, " ".join(args.note))
    print(f"Rated run {run_id}: {args.rating.strip()}/5")
    return 0


def cmd_insights(args: argparse.Namespace) -> int:
    from .insights import insights
    from .redact import neutralise

    df = insights(_existing(args))
    if args.json:
        for host, row in df.iterrows():
            clean = {k: (None if v != v else v) for k, v in row.to_dict().items()}  # NaN → null
            print(json.dumps({"host": host, **clean}, ensure_ascii=False))
    else:
        print(neutralise(df.to_string(), keep_lines=True))
    return 0
