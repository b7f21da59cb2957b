"""``%%research`` and ``%research``: the notebook face of the engine.

Import is cheap (IPython, traitlets and our light modules only); the engine, the store and
the embedding model load on first use. User mistakes become ``UsageError`` (one line, no
traceback); a failed run raises ``CellRunError`` after the cell has shown what it had.
"""

from __future__ import annotations

import contextlib
import keyword
import os
import shlex
from typing import Any, Iterator

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser, argument, magic_arguments
from traitlets import Bool, Dict, Float, Int, Integer, List, Unicode

from ..errors import (
    ConfigError,
    RunError,
    StoreForeign,
    StoreFull,
    StoreLocked,
    StoreNewerSchema,
    StoreUnreadable,
)
from ..redact import redact, redact_run, safe_url

LIVE_ENV = "FOURHOSTS_LIVE"
USER_ERRORS = (ConfigError, StoreLocked, StoreNewerSchema, StoreUnreadable, StoreForeign, StoreFull)
# RunFailed kinds that mean "the user can fix this" (engine kinds or error class names).
_USER_KINDS = {"config", "configerror", "storelocked", "storenewerschema", "storeunreadable",
               "storeforeign", "storefull"}
SUBCOMMANDS = ("runs", "show", "config", "classify", "memory", "ingest", "rate", "usage", "batch",
               "insights", "sources", "explore")
_OPTIONS_HINT = (
    "options: -p/--paradigm HOST, -e/--effort low|medium|high, -m/--model NAME, --no-stream, "
    "-s/--save VAR, --store PATH, --base-url URL, --api chat|responses, --budget-tokens N, "
    "--budget-usd X, --compare [HOSTS], --blend [MODE], --synthesize (see %%research?)"
)
LINE_HELP = """\
%research runs [-n N]            past runs as a DataFrame (newest first)
%research show RUN_ID            show a past run (or a comparison / blend, C_ID) again
%research config                 model, provider, store, embedder, which keys are set
%research classify QUESTION      the four-host probability bar for a question
%research memory search QUERY    search the memory store (DataFrame)
%research ingest PATH…           add files (text, Markdown, HTML, PDF, CSV, JSONL) to memory
%research rate RUN_ID 1-5 [NOTE] rate a past run
%research usage [--by host|model|day|tool|run]  tokens and cost (DataFrame + bar chart)
%research batch FILE --column Q   research every question of a CSV/Parquet/JSONL file (DataFrame)
%research insights               per-host ratings, patterns and trend (DataFrame + chart)
%research sources RUN_ID --format bibtex|csl-json|apa   a run's sources for a reference manager
%research explore [QUESTION]     the paradigm explorer: live bar, why, overrides
Quote a question that ends with "?" (IPython reads a trailing ? as a help request).
Ask a question with the cell magic: %%research on the first line, the question below."""


class CellRunError(RunError):
    """A run failed in a cell. Shown as one line (the cell already shows the partial answer)."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mRunError\x1b[0m ({self.kind}): {self}"]


@contextlib.contextmanager
def user_errors(prefix: str = "") -> Iterator[None]:
    """Turn our user-mistake errors into UsageError: one clear line, no traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        raise UsageError(f"{prefix}{exc}") from None


def live_from_env() -> bool | None:
    value = os.environ.get(LIVE_ENV)
    if value is None or not value.strip():
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def _sub_parser(name: str, usage: str) -> MagicArgumentParser:
    return MagicArgumentParser(prog=f"research {name}", usage=usage)


def _parse(parser: MagicArgumentParser, argv: list[str], usage: str) -> Any:
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(f"{exc}. Usage: {usage}") from None


@magics_class
class ResearchMagics(Magics):
    """Settings for ``%%research``; change them with ``%config ResearchMagics.<name> = …``."""

    live = Bool(
        True, help="Stream into the cell (False: draw the final result once, for nbval runs)."
    ).tag(config=True)
    paradigm = Unicode(
        "", help="Default host for %%research when -p is not given ('' = classify)."
    ).tag(config=True)
    effort = Unicode("", help="Default effort: low, medium or high ('' = estimate).").tag(
        config=True
    )
    model = Unicode("", help="Default model / deployment name ('' = provider default).").tag(
        config=True
    )
    store_path = Unicode("", help="Store file ('' = $FOURHOSTS_HOME or the user data dir).").tag(
        config=True
    )
    base_url = Unicode("", help="OpenAI-compatible server URL ('' = from the environment).").tag(
        config=True
    )
    api = Unicode(
        "", help="OpenAI API for model providers: chat or responses ('' = $FOURHOSTS_API or chat)."
    ).tag(config=True)
    max_rate = Float(10.0, help="Most redraws per second while streaming.").tag(config=True)
    segmented = Bool(
        True, help="Live cells send each finished piece once (bytes linear in the answer; a compare "
        "grid streams through widgets in a kernel); False: redraw the whole run or grid through one display handle."
    ).tag(config=True)
    prices = Dict(
        help="Price overrides, model → [input, output(, cached input)] USD per 1M tokens."
    ).tag(config=True)
    auto_blend = Bool(
        True, help="Blend by itself when two hosts qualify (p ≥ 0.35) and no host is forced."
    ).tag(config=True)
    learning = Bool(
        True, help="Adjust routing by the analyst's ratings (FOURHOSTS_LEARNING=0 also turns it off)."
    ).tag(config=True)
    lock_timeout = Float(
        15.0, help="Seconds to wait for a store locked by another kernel before giving up."
    ).tag(config=True)
    session_budget_usd = Float(
        None, allow_none=True,
        help="Most USD this kernel's runs and batches may cost together (None = no limit).",
    ).tag(config=True)
    session_budget_tokens = Integer(
        None, allow_none=True,
        help="Most tokens this kernel's runs and batches may use together (None = no limit).",
    ).tag(config=True)

    # evaluation, self-healing and collaboration (quality/policy.py); None = the default there
    evaluation = Bool(None, allow_none=True, help="Evaluate each answer (confidence with its parts).").tag(config=True)
    healing_rounds = Int(None, allow_none=True, help="Most self-healing rounds (0: never heal).").tag(config=True)
    healing_triggers = List(Unicode(), default_value=None, allow_none=True, help=(
        "Healing triggers: needs_improvement, low_confidence, too_short, no_sources, low_metric.")).tag(config=True)
    low_confidence = Float(None, allow_none=True, help="Heal below this confidence (0.35).").tag(config=True)
    min_chars = Int(None, allow_none=True, help="Heal an answer shorter than this (100).").tag(config=True)
    metric_floor = Float(None, allow_none=True, help="Heal when a metric is below this (0.5).").tag(config=True)
    collaboration = Bool(None, allow_none=True, help="Let a host ask another for help.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        # A Provider object to answer runs instead of the configured one (tests, custom models).
        self.provider: Any = None
        self._session_budget: Any = None
        if shell is not None and self not in shell.configurables:
            shell.configurables.append(self)  # so %config ResearchMagics.live = False works

    # -- helpers -----------------------------------------------------------------------------

    def settings(  # noqa: ANN201 - Settings
        self, *, model: str | None = None, store: str | None = None, base_url: str | None = None,
        api: str | None = None,
    ):
        from ..config import Settings

        return Settings.from_env(
            api=api or self.api or None,
            model=model or self.model or None,
            store_path=store or self.store_path or None,
            base_url=base_url or self.base_url or None,
            **({"prices": dict(self.prices)} if self.prices else {}),
            **({} if self.learning else {"learning": False}),
            quality=self._quality(),
        )

    @property
    def session_budget(self):  # noqa: ANN201 - schedule.Budget
        """What this kernel's runs have used, under the session limits (set at any time)."""
        from ..schedule.budget import Budget

        if self._session_budget is None:
            self._session_budget = Budget(scope="session")
        b = self._session_budget
        b.limit_usd, b.limit_tokens = self.session_budget_usd, self.session_budget_tokens
        return b

    def _quality(self):  # noqa: ANN202 - QualityPolicy
        from dataclasses import replace

        from ..quality.policy import QualityPolicy

        set_ = {k: v for k, v in (("evaluate", self.evaluation), ("healing_rounds", self.healing_rounds), ("low_confidence", self.low_confidence),
                                  ("min_chars", self.min_chars), ("metric_floor", self.metric_floor),
                                  ("collaboration", self.collaboration)) if v is not None}
        if self.healing_triggers is not None:
            set_["triggers"] = tuple(self.healing_triggers)
        try:
            return replace(QualityPolicy.from_env(), **set_)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None

    def store(self, path: str | None = None):  # noqa: ANN201 - Store
        from ..memory.backends import open_store

        path = self.settings(store=path).resolved_store_path()
        return open_store(path, lock_timeout=self.lock_timeout)

    def is_live(self, no_stream: bool = False) -> bool:
        if no_stream or not self.live:
            return False
        env = live_from_env()
        return True if env is None else env

    # -- the magic ---------------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "-p", "--paradigm", metavar="HOST",
        help="answer as this host: dolores, teddy, bernard or maeve "
        "(default: classify the question)",
    )  # fmt: skip
    @argument(
        "-e", "--effort", metavar="LEVEL",
        help="low, medium or high (default: estimated from the question)",
    )  # fmt: skip
    @argument(
        "-m", "--model", metavar="NAME", help="model or deployment name (default: the provider's)"
    )
    @argument(
        "--no-stream", action="store_true", help="draw the final result once instead of streaming"
    )
    @argument("-s", "--save", metavar="VAR", help="store the Answer object in this variable")
    @argument("--store", metavar="PATH", help="use this store file for this run")
    @argument("--base-url", metavar="URL", help="an OpenAI-compatible server for this run")
    @argument("--api", metavar="API", help="chat or responses: the OpenAI API for this run")
    @argument("--budget-tokens", type=int, metavar="N",
              help="most tokens this run may use (a call that would pass it is refused before it is made)")
    @argument("--budget-usd", type=float, metavar="X", help="most USD this run may cost")
    @argument(
        "--compare", nargs="?", const="all", metavar="HOSTS",
        help="the hosts answer side by side, at the same time: all four, or e.g. dolores,bernard",
    )  # fmt: skip
    @argument(
        "--blend", nargs="?", const="auto", metavar="MODE",
        help="blend the most likely hosts into one answer: weighted, sequential or collaborative "
        "(default: chosen by the host pair; a blend also runs by itself when two hosts qualify)",
    )  # fmt: skip
    @argument(
        "--synthesize", action="store_true",
        help="with --compare and a model: a last pass on where the hosts agree / disagree",
    )  # fmt: skip
    @line_cell_magic
    def research(self, line: str, cell: str | None = None) -> Any:
        """Ask the Four Hosts a research question; the answer streams into the cell.

        As a cell magic, the question is the cell body:

            %%research --effort high
            How should a mid-size city cut traffic deaths in half within five years?

        As a line magic, subcommands:

            %research runs [-n N]            past runs as a DataFrame (newest first)
            %research show RUN_ID            show a past run again
            %research config                 model, provider, store, embedder, keys set (✅/❌)
            %research classify QUESTION      the four-host probability bar
            %research memory search QUERY    search the memory store
            %research ingest PATH…           add files to memory
            %research rate RUN_ID 1-5 [NOTE] rate a past run
            %research usage [--by host|model|day|tool|run]  tokens and cost (DataFrame + chart)
            %research batch FILE --column Q  research every question of a file (DataFrame)
            %research insights               per-host ratings, patterns, trend and chart
            %research sources RUN_ID --format bibtex|csl-json|apa   a run's sources, exported
            %research explore [QUESTION]     the paradigm explorer (live bar, why, overrides)

        Quote a line-magic question that ends with "?" (IPython reads a trailing ? as help).

        Defaults: ``%config ResearchMagics.<name> = …`` with name one of live, paradigm,
        effort, model, store_path, base_url, api, max_rate, lock_timeout. FOURHOSTS_LIVE=0 draws
        final results only (for notebooks run by nbval/nbclient).
        """
        if cell is None:
            return self._line(line)
        return self._cell(line, cell)

    # -- %%research --------------------------------------------------------------------------

    def _cell_args(self, line: str) -> Any:
        try:
            args, extra = self.research.parser.parse_argstring(line, partial=True)
        except ValueError as exc:  # unbalanced quotes
            raise UsageError(
                f"%%research: cannot read the options ({exc}); check the quotes"
            ) from None
        except UsageError as exc:
            raise UsageError(f"%%research: {exc}. {_OPTIONS_HINT}") from None
        if extra:
            unknown = [a for a in extra if a.startswith("-")]
            if unknown:
                raise UsageError(
                    f"%%research: unknown option {unknown[0]!r}. {_OPTIONS_HINT}"
                )
            raise UsageError(
                f"%%research: unexpected text on the magic line ({' '.join(extra)!r}); put the "
                "question in the cell body, on the lines below %%research"
            )
        return args

    def _cell(self, line: str, cell: str) -> None:
        from ..classifier import Effort
        from ..paradigms import HostParadigm

        args = self._cell_args(line)
        question = cell.strip()
        if not question:
            raise UsageError(
                "%%research: the cell is empty. Write your question on the lines below "
                "%%research, e.g.\n%%research\nHow should a city cut traffic deaths?"
            )
        if args.save and (not args.save.isidentifier() or keyword.iskeyword(args.save)):
            raise UsageError(
                f"%%research: --save {args.save!r} is not a valid Python variable name; "
                "use e.g. --save answer"
            )
        with user_errors("%%research: "):
            paradigm = HostParadigm.parse(p) if (p := args.paradigm or self.paradigm) else None
            effort = Effort.parse(args.effort or self.effort or None)
            settings = self.settings(model=args.model, store=args.store, base_url=args.base_url,
                                     api=args.api)
        if args.compare is not None or args.blend is not None or paradigm is None:
            from .compose import run_composed

            done, result = run_composed(self, args, question, settings=settings, paradigm=paradigm,
                                        effort=effort, live=self.is_live(args.no_stream))
            if done:
                if args.save:
                    self.shell.user_ns[args.save] = result
                return
        answer = self.run(
            question,
            settings=settings,
            paradigm=paradigm,
            effort=effort,
            model=args.model or self.model or None,
            live=self.is_live(args.no_stream),
            budget_tokens=args.budget_tokens,
            budget_usd=args.budget_usd,
        )
        if args.save:
            self.shell.user_ns[args.save] = answer

    def run(
        self,
        question: str,
        *,
        settings: Any,
        paradigm: Any,
        effort: Any,
        model: str | None,
        live: bool,
        budget_tokens: int | None = None,
        budget_usd: float | None = None,
    ) -> Any:
        """One run drawn into the cell; returns the Answer, raises after a failed run."""
        from ..engine import Engine
        from ..memory.backends import open_store
        from .segmented import SegmentedCellView
        from .view import CellView

        view = (SegmentedCellView if self.segmented else CellView)(live=live, max_rate=self.max_rate)
        with user_errors("%%research: "):
            store = open_store(settings.resolved_store_path(), lock_timeout=self.lock_timeout)
            engine = Engine(settings, store=store, provider=self.provider,
                            budget=self.session_budget)
            state = view.consume(
                engine.stream(
                    question, paradigm=paradigm, effort=effort, model=model, idle_ticks=True,
                    budget_tokens=budget_tokens, budget_usd=budget_usd,
                )
            )
            if live and state.answer is not None and state.error is None:
                from IPython.display import display

                from .feedback import RatingRow

                display(RatingRow(store, state.answer.run_id))
        if state.error is not None:
            message, kind = state.error
            if kind.replace("_", "").lower() in _USER_KINDS:
                raise UsageError(f"%%research: {message}")
            raise CellRunError(
                message,
                kind=kind,
                run_id=state.run_id,
                partial_text=state.partial_text or state.text,
            )
        if state.answer is None:
            raise CellRunError(
                "the run ended without an answer or an error (the engine stopped early)",
                kind="incomplete", run_id=state.run_id, partial_text=state.text,
            )  # fmt: skip
        return state.answer

    # -- %research SUBCOMMAND ----------------------------------------------------------------

    def _line(self, line: str) -> Any:
        sub, _, rest = line.strip().partition(" ")
        if not sub:
            print(LINE_HELP)
            return None
        handler = getattr(self, f"_sub_{sub}", None) if sub in SUBCOMMANDS else None
        if handler is None:
            raise UsageError(
                f"%research: unknown subcommand {sub!r}: use one of {', '.join(SUBCOMMANDS)}. "
                "To ask a question use the cell magic: %%research on the first line, "
                "the question below."
            )
        with user_errors(f"%research {sub}: "):
            return handler(rest.strip())

    @staticmethod
    def _argv(sub: str, rest: str) -> list[str]:
        try:
            return shlex.split(rest)
        except ValueError as exc:
            raise UsageError(
                f"%research {sub}: cannot read the arguments ({exc}); check the quotes"
            ) from None

    def _sub_batch(self, rest: str) -> Any:
        from ..schedule.magic import batch_subcommand

        return batch_subcommand(self, self._argv("batch", rest))

    def _sub_runs(self, rest: str) -> Any:
        usage = "%research runs [-n N] [--store PATH]"
        p = _sub_parser("runs", usage)
        p.add_argument("-n", "--limit", type=int, default=20)
        p.add_argument("--store", default=None)
        a = _parse(p, self._argv("runs", rest), usage)
        if a.limit < 1:
            raise UsageError(f"%research runs: -n must be at least 1 (got {a.limit})")
        runs = self.store(a.store).runs(limit=a.limit)
        runs["error"] = runs["error"].map(lambda e: redact(e) if isinstance(e, str) else e)
        return runs

    def _get_run(self, sub: str, run_id: str, store: Any) -> dict[str, Any]:
        run = store.get_run(run_id)
        if run is None:
            from ..memory.backends import where

            raise UsageError(
                f"%research {sub}: no run {run_id!r} in {where(store)}; list runs with %research runs"
            )
        return redact_run(run)

    def _sub_usage(self, rest: str) -> Any:
        from IPython.display import display

        from ..usage import GROUPS, UsageChart, usage

        use = f"%research usage [--by {'|'.join(GROUPS)}] [--store PATH]"
        p = _sub_parser("usage", use)
        p.add_argument("--by", choices=GROUPS, default="day")
        p.add_argument("--store", default=None)
        a = _parse(p, self._argv("usage", rest), use)
        df = usage(a.by, store=self.store(a.store))
        display(UsageChart(df, a.by))
        return df

    def _sub_show(self, rest: str) -> Any:
        from .view import StoredRunView

        usage = "%research show RUN_ID [--store PATH]"
        p = _sub_parser("show", usage)
        p.add_argument("run_id")
        p.add_argument("--store", default=None)
        a = _parse(p, self._argv("show", rest), usage)
        if a.run_id.startswith("c_"):  # a comparison or a blend: the whole grid
            from .compose import show_comparison

            return show_comparison(a.run_id, self.store(a.store))
        return StoredRunView(self._get_run("show", a.run_id, self.store(a.store)))

    def _sub_sources(self, rest: str) -> Any:
        from ..citations import STYLES, cite

        usage = f"%research sources RUN_ID [--format {'|'.join(STYLES)}] [--store PATH]"
        p = _sub_parser("sources", usage)
        p.add_argument("run_id")
        p.add_argument("--format", "-f", default="bibtex")
        p.add_argument("--store", default=None)
        a = _parse(p, self._argv("sources", rest), usage)
        store = self.store(a.store)
        return cite(self._get_run("sources", a.run_id, store)["id"], a.format, store=store)

    def _sub_rate(self, rest: str) -> None:
        usage = "%research rate RUN_ID 1-5 [NOTE] [--store PATH]"
        p = _sub_parser("rate", usage)
        p.add_argument("run_id")
        p.add_argument("rating")
        p.add_argument("note", nargs="*")
        p.add_argument("--store", default=None)
        a = _parse(p, self._argv("rate", rest), usage)
        if a.rating not in {"1", "2", "3", "4", "5"}:
            raise UsageError(
                f"%research rate: rating {a.rating!r} is out of range; "
                "give a whole number from 1 to 5"
            )
        store = self.store(a.store)
        run = self._get_run("rate", a.run_id, store)
        store.add_feedback(run["id"], int(a.rating), " ".join(a.note))
        print(f"Rated run {run['id']}: {a.rating}/5")

    def _sub_insights(self, rest: str) -> Any:
        from IPython.display import display

        from ..insights import RatingsChart, insights

        usage = "%research insights [--store PATH]"
        p = _sub_parser("insights", usage)
        p.add_argument("--store", default=None)
        a = _parse(p, self._argv("insights", rest), usage)
        store = self.store(a.store)
        display(RatingsChart.of(store))
        return insights(store)

    def _sub_config(self, rest: str) -> Any:
        from .view import ConfigReport

        usage = "%research config [--store PATH]"
        p = _sub_parser("config", usage)
        p.add_argument("--store", default=None)
        a = _parse(p, self._argv("config", rest), usage)
        return ConfigReport(self.config_rows(self.settings(store=a.store)))

    def config_rows(self, settings: Any) -> list[tuple[str, str]]:
        from ..config import KEY_VARIABLES, key_status

        status = key_status()
        auto = "auto" if any(status.values()) else "auto (offline: no key set)"
        provider = settings.provider or auto
        rows = [
            ("provider", provider),
            ("model", settings.model or "(provider default)"),
            ("base URL", safe_url(settings.base_url) or "—"),
            ("Azure endpoint", safe_url(settings.azure_endpoint) or "—"),
            ("Azure deployment", settings.azure_deployment or "—"),
            ("API", settings.api),
            ("store", str(settings.resolved_store_path())),
            ("embedder", _embedder_description()),
            ("live streaming", "on" if self.is_live() else "off (final render)"),
        ]
        rows += [(name, "✅ set" if status.get(name) else "❌ not set") for name in KEY_VARIABLES]
        return rows

    def _sub_classify(self, rest: str) -> Any:
        from ..classifier import classify
        from .view import HostBar

        question = _unquote(rest)
        if not question:
            raise UsageError(
                '%research classify: no question given; use %research classify "How should …?"'
            )
        from .. import learning

        c = classify(question, paradigm=self.paradigm or None)
        store = self.store()
        from ..memory.backends import exists

        return HostBar(learning.route(store if exists(store) else None, c, on=self.learning))

    def _sub_explore(self, rest: str) -> Any:
        from .explorer import Explorer

        return Explorer(_unquote(rest), store=self.store_path or None)

    def _sub_memory(self, rest: str) -> Any:
        action, _, query = rest.partition(" ")
        if action != "search":
            raise UsageError(
                f"%research memory: unknown action {action!r}; use %research memory search QUERY"
            )
        query = _unquote(query)
        if not query:
            raise UsageError(
                "%research memory search: no query given; "
                'use %research memory search "speed limits"'
            )
        from .browser import memory_search_df

        return memory_search_df(self.store(), query, k=10, host=self.paradigm or None)

    def _sub_ingest(self, rest: str) -> Any:
        from ..memory.ingest import ingest

        usage = "%research ingest PATH… [--namespace NS] [--id-field F] [--text-field F]"
        p = _sub_parser("ingest", usage)
        p.add_argument("paths", nargs="+")
        p.add_argument("--namespace", default="shared")
        p.add_argument("--id-field", default=None)
        p.add_argument("--text-field", default=None)
        a = _parse(p, self._argv("ingest", rest), usage)
        report = ingest(
            a.paths, self.store(), a.namespace, id_field=a.id_field, text_field=a.text_field
        )
        print(report)
        return None


def _embedder_description() -> str:
    """Which embedder a run would use, without loading it (torch takes seconds)."""
    from ..memory import embeddings as emb

    if getattr(emb, "_default", None) is not None:
        return f"{emb._default.name} (loaded)"
    if os.environ.get("FOURHOSTS_EMBEDDER") == "hashing":
        return f"{emb.HASH_MODEL_NAME} (FOURHOSTS_EMBEDDER=hashing)"
    if emb.local_model_available():
        return f"{emb.LOCAL_MODEL_NAME} (local, loads on first use)"
    return f"{emb.HASH_MODEL_NAME} (local model not installed)"


PRELOAD_ENV = "FOURHOSTS_PRELOAD"  # 0: do not get the embedder ready in the background


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext fourhosts_jupyter``: register the magics (nothing heavy happens here), and
    get the embedder ready on a background thread while the analyst types the first question."""
    ip.register_magics(ResearchMagics(shell=ip))
    if os.environ.get(PRELOAD_ENV, "1") != "0":
        import threading

        threading.Thread(target=_preload, name="fourhosts-preload", daemon=True).start()


def _preload() -> None:
    """The session's embedder, the shipped corpus vectors and one question's forward pass (all
    without torch); a first run waits on the same lock instead of loading twice."""
    try:
        from ..memory import embeddings as emb
        from ..memory.vector_cache import shipped

        e = emb.get_embedder()
        shipped(getattr(e, "name", ""))
    except Exception:  # noqa: BLE001 - the run itself reports any failure, where it can be seen
        pass


def unload_ipython_extension(ip: Any) -> None:
    ip.configurables[:] = [c for c in ip.configurables if not isinstance(c, ResearchMagics)]
