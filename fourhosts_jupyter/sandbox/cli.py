"""``fourhosts sandbox run [--paradigm HOST] FILE.py``: run a file in the sandbox, print JSON.

``cli.py`` hooks this in through ``add_parsers(subparsers)`` (COMMAND_MODULES); it also runs alone:
``python -m fourhosts_jupyter.sandbox.cli run FILE.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..cli_args import Parser, positive_seconds
from ..errors import FourHostsError
from ..redact import neutralise


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="sandbox_command", required=True)
    run = sub.add_parser("run", help="run a Python file in the sandbox and print the result as JSON")
    run.add_argument("file", help="the .py file to run (only this file is copied into the sandbox)")
    run.add_argument("--paradigm", "-p", default=None,
                     help="host whose sandbox profile sets the limits (dolores, teddy, bernard, maeve)")
    run.add_argument("--allow-network", action="store_true",
                     help="allow network if the host's profile permits it (never for bernard)")
    run.add_argument("--tier", choices=("bubblewrap", "rlimits"), default=None,
                     help="force an isolation tier (default: the best that works here)")
    run.add_argument("--timeout", type=positive_seconds, default=None, help="wall-clock limit in seconds")
    run.add_argument("--with-images", action="store_true", help="include images as base64")
    run.add_argument("--full-output", action="store_true",
                     help="do not replace outputs over 10,000 characters by a digest")


def add_parsers(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``sandbox`` on the main CLI; the handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser("sandbox", help="run code in the sandbox")
    _configure(p)
    p.set_defaults(func=_handle)
    return p


def _handle(args: argparse.Namespace) -> int:
    from .limits import limits_for
    from .runner import run_file

    try:
        lim = limits_for(args.paradigm, allow_network=args.allow_network)
        if args.timeout is not None:
            lim = lim.with_(timeout_s=args.timeout, cpu_s=None)
        result = run_file(args.file, limits=lim, tier=args.tier)
    except FourHostsError as exc:
        print(f"error: {neutralise(' '.join(str(exc).split()))}", file=sys.stderr)
        return 2
    data = result.to_dict(include_data=args.with_images, gated=not args.full_output)
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0 if result.ok else 1


def sandbox_cli(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``fourhosts sandbox …`` (argv without the word "sandbox")."""
    p = Parser(prog="fourhosts sandbox", description="run code in the sandbox")
    _configure(p)
    return _handle(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(sandbox_cli())
