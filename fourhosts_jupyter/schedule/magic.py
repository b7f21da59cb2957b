"""``%research batch``: the notebook face of batch research (returns the result DataFrame).

    %research batch questions.csv --column question --concurrency 8 --budget-tokens 200000
    %research batch --resume b_… [--retry-failed]
    %research batch --list
    %research batch questions.csv --workers --store postgresql://…   (answered by `fourhosts worker`)
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError


USAGE = ("%research batch FILE [--column NAME] [--out PATH] [--concurrency N] [--budget-tokens N] "
         "[--budget-usd X] [-p HOST | --compare [HOSTS]] [-e LEVEL] [-m MODEL] [--store PATH] [--workers] | --resume BATCH_ID "
         "[--retry-failed] | --list")


def batch_subcommand(magics: Any, argv: list[str]) -> Any:
    """Run ``%research batch`` for ``magics`` (a ResearchMagics) with the parsed ``argv``."""
    from ..jupyter.magics import _parse, _sub_parser

    p = _sub_parser("batch", USAGE)
    p.add_argument("file", nargs="?")
    p.add_argument("--column")
    p.add_argument("-o", "--out")
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--budget-tokens", type=int)
    p.add_argument("--budget-usd", type=float)
    p.add_argument("--resume")
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--compare", nargs="?", const="all")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--workers", action="store_true")
    p.add_argument("-p", "--paradigm")
    p.add_argument("-e", "--effort")
    p.add_argument("-m", "--model")
    p.add_argument("--base-url")
    p.add_argument("--store")
    a = _parse(p, argv, USAGE)
    if a.list:
        from .batch import list_batches

        return list_batches(magics.store(a.store))
    if bool(a.file) == bool(a.resume):
        raise UsageError(f"%research batch: give a FILE or --resume BATCH_ID. Usage: {USAGE}")
    from .batch_io import check_output, questions_from, read_table

    check_output(a.out)
    questions = questions_from(read_table(a.file), a.column, source=a.file) if a.file else None
    from ..engine import Engine
    from .batch import batch

    settings = magics.settings(model=a.model, store=a.store, base_url=a.base_url)
    engine = Engine(settings, store=magics.store(a.store), provider=magics.provider,
                    budget=magics.session_budget)
    options = {k: getattr(a, k) for k in ("paradigm", "effort", "model", "base_url")
               if getattr(a, k) is not None}
    df = batch(questions, engine=engine, concurrency=a.concurrency, budget_tokens=a.budget_tokens,
               budget_usd=a.budget_usd, resume=a.resume, retry_failed=a.retry_failed,
               source=a.file, column=a.column, progress=not a.no_progress, compare=a.compare,
               **({"workers": True} if a.workers else {}), **options)
    if a.out:
        from .batch_io import write_table

        write_table(df, a.out)
    print(f"batch {df.attrs['batch_id']}: {df.attrs['state']} · {df.attrs['counts']}"
          + (f" — {df.attrs['note']}" if df.attrs.get("note") else ""))
    return df
