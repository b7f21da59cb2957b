"""``fourhosts worker``: answer batch items queued in a shared PostgreSQL store.

    fourhosts worker --store postgresql://analyst@db/research --concurrency 4
    fourhosts batch questions.csv --column question --workers --store postgresql://…

Stop it with Ctrl-C or SIGTERM: items it was answering finish first. ``--lease`` and
``--heartbeat`` set how soon the items of a worker that died are answered by another.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from ..cli import _settings
    from ..errors import ConfigError
    from ..memory.backends import is_postgres, open_store
    from ..redact import redact
    from .worker import WORKERS_NEED_PG, Worker, WorkerConfig

    settings = _settings(args)
    where = settings.resolved_store_path()
    if not is_postgres(where):
        raise ConfigError(WORKERS_NEED_PG)
    config = WorkerConfig(args.concurrency, args.heartbeat, args.lease).check()
    store = open_store(where)
    worker = Worker(store, config, settings=settings)
    logging.basicConfig(level=logging.WARNING, format="fourhosts worker: %(message)s")
    print(f"worker {worker.name} on {redact(store.url)} · concurrency {config.concurrency} · "
          f"lease {config.lease:g} s", file=sys.stderr, flush=True)
    asyncio.run(worker.run())
    print(f"worker {worker.name} stopped · answered {worker.answered}", file=sys.stderr, flush=True)
    return 0


def add_parsers(sub: Any) -> None:
    from ..cli_args import positive_int, positive_seconds

    p = sub.add_parser("worker", help="answer batch items queued in a shared PostgreSQL store")
    p.add_argument("-c", "--concurrency", type=positive_int, default=4, metavar="N",
                   help="items answered at once (default 4)")
    p.add_argument("--heartbeat", type=positive_seconds, default=10.0, metavar="S",
                   help="seconds between heartbeats (default 10)")
    p.add_argument("--lease", type=positive_seconds, default=30.0, metavar="S",
                   help="a worker silent this long is taken for dead and its items answered by "
                        "another (default 30)")
    p.add_argument("--store", metavar="URL",
                   help="the shared store, postgresql://… (default: $FOURHOSTS_STORE)")
    p.set_defaults(func=cmd_worker)
