"""``fourhosts tools``: the tools a host is offered, and one tool run from the terminal.

    fourhosts tools [--paradigm HOST] [--json]          # name, hosts offered it, description
    fourhosts tools run NAME 'JSON ARGS' [--paradigm HOST] [--store PATH]

``run`` goes through the same runner as a research run (validation, breaker, timeout × the
host's multiplier) and prints the tool's JSON result; a failed call prints the structured error
the model would read (``{"error", "kind", "retryable", "success": false}``) and exits 1. Bad
JSON arguments or a tool the host is not offered are a usage error (one line, exit 2). For
analysts checking a back-end, and for evaluation from outside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..errors import ConfigError
from ..redact import neutralise, terminal_json


def add_parsers(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tools", help="list the tools a host is offered, or run one")
    p.add_argument("-p", "--paradigm", help="only the tools this host is offered (dolores, teddy, bernard, maeve)")
    p.add_argument("--json", action="store_true", help="one JSON object per tool")
    p.set_defaults(func=cmd_tools)
    sub = p.add_subparsers(dest="tools_command", metavar="run")
    r = sub.add_parser("run", help="run one tool and print its JSON result")
    r.add_argument("name", help="the tool's name (see  fourhosts tools)")
    r.add_argument("arguments", nargs="?", default="{}", help="its arguments as one JSON object, e.g. '{\"query\": \"…\"}'")
    r.add_argument("-p", "--paradigm", dest="run_paradigm", help="run as this host (its tool list and time limits)")
    r.add_argument("--store", metavar="PATH", help="the DuckDB store file (default: $FOURHOSTS_HOME/store.duckdb)")
    r.set_defaults(func=cmd_run)
    return p


def tool_rows(host: str | None) -> list[dict[str, Any]]:
    """One row per tool ``host`` is offered (every tool when None), with the hosts offered it."""
    from ..paradigms import HOSTS, HostParadigm
    from .registry import default_registry

    reg = default_registry()
    parsed = HostParadigm.parse(host) if host else None
    offered_to = {h.value: {t.name for t in reg.for_host(h)} for h in HOSTS}
    return [
        {
            "name": t.name,
            "hosts": [h for h, names in offered_to.items() if t.name in names],
            "builtin": t.builtin,
            "description": t.description.split("\n\n")[0],
            "parameters": list(t.arg_names),
        }
        for t in sorted(reg.for_host(parsed), key=lambda t: t.name)
    ]


def cmd_tools(args: argparse.Namespace) -> int:
    rows = tool_rows(args.paradigm)
    if args.json:
        for row in rows:
            print(terminal_json(row))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        hosts = ",".join(r["hosts"]) or "-"
        print(f"{r['name']:<{width}}  {hosts:<29}  {neutralise(r['description'], limit=90)}")
    return 0


def parse_json_arguments(text: str) -> dict[str, Any]:
    """The command line's JSON object, or a ConfigError saying how to write it."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"the tool arguments are not valid JSON ({exc.msg} at position {exc.pos}): "
            "pass one JSON object in single quotes, e.g. '{\"query\": \"speed limits\"}'"
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"the tool arguments must be a JSON object with named parameters, not {type(value).__name__}: "
            "e.g. '{\"query\": \"speed limits\"}'"
        )
    return value


def cmd_run(args: argparse.Namespace) -> int:
    from ..paradigms import HostParadigm
    from .registry import default_registry

    arguments = parse_json_arguments(args.arguments)
    host = HostParadigm.parse(args.run_paradigm) if args.run_paradigm else None
    reg = default_registry()
    offered = {t.name for t in reg.for_host(host)}
    if args.name not in offered:
        whom = f"host {host.value}" if host else "this installation"
        raise ConfigError(
            f"no tool {args.name!r} is offered to {whom}: use one of {', '.join(sorted(offered))} "
            "(list them with  fourhosts tools --paradigm HOST)"
        )
    outcome = _run_sync(_run_one(reg, host, args.name, arguments, args.store))
    print(terminal_json(outcome.result, indent=2, default=str))  # the result, or the error payload
    return 0 if outcome.ok else 1


def _run_sync(coro: Any) -> Any:
    """Run ``coro`` to the end, also from inside a running event loop (a Jupyter kernel calling
    ``main([...])``): then on a thread of its own, with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fh-tools-cli") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _run_one(reg: Any, host: Any, name: str, arguments: dict[str, Any], store_path: str | None) -> Any:
    from .context import ParadigmAwareToolContext
    from .runner import ToolRunner

    store = None
    tool = reg.get(name)
    if tool is not None and tool.context_param:  # only a tool that can use the store opens it
        from ..config import Settings
        from ..memory.store import Store

        store = Store(Settings.from_env(store_path=store_path).resolved_store_path())
    ctx = ParadigmAwareToolContext(paradigm=host, store=store, question="", run_id="cli")
    runner = ToolRunner(reg, host=host)
    return await runner.run("cli-call", name, json.dumps(arguments), ctx, lambda _event: None)
