"""The ``fourhosts`` command: research, classify, runs, show, config (+ commands from modules).

Errors are one line on stderr and a non-zero exit: 2 for a usage mistake, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Sequence

from .cli_args import Parser, positive_int
from .errors import ConfigError, FourHostsError
from .redact import neutralise, redact, redact_run, terminal_json

# Modules that add their own subcommands: each has add_parsers(subparsers), and each parser it
# adds sets ``func`` (args -> exit code). Add a line here to register a module.
COMMAND_MODULES: list[str] = ["fourhosts_jupyter.sandbox.cli",
                              "fourhosts_jupyter.memory.cli_commands", "fourhosts_jupyter.usage",
                              "fourhosts_jupyter.schedule.cli", "fourhosts_jupyter.compare_cli",
                              "fourhosts_jupyter.learning_cli", "fourhosts_jupyter.tools.cli",
                              "fourhosts_jupyter.memory.store_cli", "fourhosts_jupyter.schedule.worker_cli"]


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH", help="the DuckDB store file (default: $FOURHOSTS_HOME/store.duckdb)")


def _settings(args: argparse.Namespace, **extra: Any):  # noqa: ANN202
    from .config import Settings

    return Settings.from_env(store_path=getattr(args, "store", None), **extra)


def cmd_research(args: argparse.Namespace) -> int:
    question = " ".join(args.question).strip()
    _check_options(args)
    from .engine import Engine  # heavy: after the checks
    from .events import RunFailed
    from .terminal import render

    engine = Engine(_settings(args, api=args.api))
    events = engine.stream(
        question, paradigm=args.paradigm, effort=args.effort, model=args.model, base_url=args.base_url,
        budget_tokens=args.budget_tokens, budget_usd=args.budget_usd,
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
    _check_options(args)
    if args.question:
        questions = [" ".join(args.question).strip()]
    else:
        questions = [l for l in sys.stdin.read().splitlines() if l.strip()]
    if not any(questions):
        raise ConfigError("no question given: pass one as an argument or one per line on standard input")
    from . import learning
    from .classifier import classify  # heavy: after the checks
    from .terminal import host_bar

    store = _existing_store(args)
    learned = None  # learning off: the plain classifier, marked as such
    if learning.enabled():
        learned = learning.load(store) if store is not None else learning.Learned()
    for q in questions:
        c = classify(q, paradigm=args.paradigm)
        c = learning.adjust(c, learned) if learned is not None else learning.disabled(c)
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False), flush=True)
        else:
            print(neutralise(q))
            print(host_bar(c))
            learned_line = c.scores["learning"].get("reason")
            if learned_line:
                print(neutralise(learned_line))
            print(f"type {c.query_type} · phase {c.phase} · effort {c.effort}\n")
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Paradigm and effort checked before the engine or a model loads (a mistake costs < 1 s)."""
    from .paradigms import HostParadigm

    if getattr(args, "paradigm", None):
        HostParadigm.parse(args.paradigm)
    if getattr(args, "effort", None):
        from .classifier import Effort  # imports numpy: only when there is an effort to check

        Effort.parse(args.effort)


QUESTION_CHARS = 80  # a longer question is cut in the `runs` table (never padded to the longest)
_COLUMNS = (("id", 18), ("started_at", 19), ("status", 19), ("paradigm", 8), ("provider", 10))


def _row(cells: Sequence[Any], question: str) -> str:
    fixed = "  ".join(f"{neutralise(str(c or '-'), limit=w + 2):<{w}}" for c, (_, w) in zip(cells, _COLUMNS))
    return f"{fixed}  {neutralise(' '.join(question.split()), limit=QUESTION_CHARS)}"


def _plain(value: Any) -> Any:
    """A pandas cell as JSON: NaN/NaT (a NULL) → None, a timestamp → ISO 8601."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "isoformat"):
        return None if str(value) == "NaT" else value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _existing_store(args: argparse.Namespace) -> Any:
    """The store, or None when its file does not exist (reading must not create one)."""
    from .memory.store import Store

    path = _settings(args).resolved_store_path()
    from .memory.backends import is_postgres, open_store

    if is_postgres(path):  # a server holds it: nothing to check on disk
        return open_store(path)
    return Store(path) if path.exists() else None


def cmd_runs(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    df = store.runs(limit=args.limit) if store is not None else None
    rows = [] if df is None else [redact_run({k: _plain(v) for k, v in r.items()}) for r in df.to_dict(orient="records")]
    if rows and args.json:
        from .learning import ratings

        rated = ratings(store)
        for r in rows:
            r["rating"] = rated.get(r["id"])  # the run's latest rating, None when unrated
    if args.json:
        print(terminal_json(rows, default=str, allow_nan=False))
    elif not rows:
        print("no runs yet: try  fourhosts research \"your question\"")
    else:
        print(_row([name for name, _ in _COLUMNS], "question"))
        for r in rows:
            r["status"] = _status(r["status"], r.get("error_kind"))
            print(_row([str(r[name] or "")[:19] for name, _ in _COLUMNS], r["question"] or ""))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .memory.origins import source_line

    store = _existing_store(args)
    run = store.get_run(args.run_id) if store is not None else None
    if run is None:
        raise ConfigError(f"no run {args.run_id!r} in the store: list runs with  fourhosts runs")
    run = redact_run(run)
    if args.json:
        print(terminal_json(run, default=str, indent=2))
        return 0
    status = _status(run["status"], run.get("error_kind"))
    api = (run.get("options") or {}).get("api")
    model = f"{run['provider']}/{run['model']}" + (f" ({api} API)" if api else "")
    head = (run["id"], run["started_at"], status, run["paradigm"], model)
    print("  ".join(neutralise(str(x)) for x in head))
    print(f"Q: {neutralise(run['question'] or '')}\n")
    print(neutralise(run["answer"] or "", keep_lines=True))
    for s in run.get("sources") or []:
        print(source_line(s["n"], s["title"], s["origin"], s.get("date", "")))
    if run.get("evaluation"):  # quality/ (m007): confidence, healing, collaboration
        from .quality.panel import stored_lines

        print("\n" + "\n".join(stored_lines(run["evaluation"])))
    if run.get("error"):
        print(f"\nerror: {neutralise(run['error'])}")
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
    parser = Parser(prog="fourhosts", description="The Four Hosts research assistant.")
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
    importlib.import_module("fourhosts_jupyter.schedule.cli").add_budget_args(p)
    _store_arg(p)
    p.set_defaults(func=cmd_research)

    p = sub.add_parser("classify", help="classify questions (one per line on stdin if none given)")
    p.add_argument("question", nargs="*")
    p.add_argument("-p", "--paradigm", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="one JSON object per question")
    _store_arg(p)  # whose ratings adjust the probabilities (FOURHOSTS_LEARNING=0: none)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("runs", help="list past runs")
    p.add_argument("-n", "--limit", type=positive_int, default=20, help="how many (default 20)")
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
        print(f"fourhosts: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except FourHostsError as exc:
        print(f"fourhosts: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fourhosts: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _one_line(exc: BaseException) -> str:
    return neutralise(redact(" ".join(str(exc).split())))


if __name__ == "__main__":
    sys.exit(main())
