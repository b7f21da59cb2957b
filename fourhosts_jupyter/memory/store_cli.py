"""``fourhosts store migrate --from A --to B``: copy a store between back-ends (a DuckDB file
path or a ``postgresql://`` URL, either way round)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("store", help="store administration (copy between DuckDB and PostgreSQL)")
    inner = p.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    m = inner.add_parser("migrate", help="copy a store into another (resumable; counts checked)")
    m.add_argument("--from", dest="source", required=True, metavar="PATH|URL",
                   help="the store to copy: a DuckDB file or postgresql://…")
    m.add_argument("--to", dest="target", required=True, metavar="PATH|URL",
                   help="where to copy it: postgresql://… or a DuckDB file")
    m.add_argument("--batch", type=int, default=5000, help="memories per committed batch (default 5000)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from .backends import is_postgres, open_store
    from .store_copy import copy_store

    if str(args.source) == str(args.target):
        raise ConfigError("--from and --to name the same store: give two different stores")
    if not is_postgres(args.source) and not Path(args.source).expanduser().exists():
        raise ConfigError(f"no store at {args.source}: give an existing DuckDB file or a postgresql:// URL to --from")
    if args.batch < 1:
        raise ConfigError(f"--batch must be at least 1, not {args.batch}")
    report = copy_store(open_store(args.source), open_store(args.target), batch=args.batch,
                        progress=not args.quiet)
    print(report.summary())
    return 0
