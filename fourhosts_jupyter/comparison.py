"""Compare: several hosts answer the same question at the same time, one run each.

A composition of runs on top of the engine (the engine keeps doing one run well). Each host's
run is the engine's own run forced to that host (``paradigm=``); the runs go concurrently
through ``_run_concurrently`` (one scheduler task per host, inside the run's or batch's
budget), their events arrive tagged with their host, and when all have finished a
:class:`Comparison` carries the answers and the footer figures (shared / single-host sources,
length, tokens, cost, time, distinctive terms). The run log keeps one run per host, linked by
the comparison id (migration m006).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Hashable, Iterator, Mapping, Sequence

from .errors import ConfigError, FourHostsError, RunError
from .events import AnswerReady, RunFailed, RunStarted, Source, Usage, to_jsonable
from .paradigms import HOSTS, PROFILES, HostParadigm

# Words too common to say what a host stressed (distinctive terms are computed offline).
_STOP = frozenset(
    """a about above after again all also an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you
    your yours may might must one two three within without across per via e g eg ie etc""".split()
) | {h.value for h in HOSTS}  # the offline engine names the host it writes as
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


def parse_hosts(value: str | Sequence[str | HostParadigm] | None) -> tuple[HostParadigm, ...]:
    """``None`` / ``""`` / ``"all"`` → all four; else a comma-separated list (at least two)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "all")):
        return HOSTS
    items = value.split(",") if isinstance(value, str) else list(value)
    hosts: list[HostParadigm] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        host = HostParadigm.parse(item)
        if host not in hosts:
            hosts.append(host)
    if len(hosts) < 2:
        raise ConfigError(
            f"compare needs at least two hosts (got {', '.join(hosts) or 'none'}); "
            "give e.g. dolores,bernard, or nothing for all four"
        )
    return tuple(hosts)


@dataclass(frozen=True)
class HostEvent:
    """One engine event of one host's run in a comparison."""

    host: HostParadigm
    event: Any
    type: str = "host_event"


@dataclass(frozen=True)
class CompareStarted:
    comparison_id: str
    question: str
    hosts: tuple[HostParadigm, ...]
    kind: str = "compare"
    type: str = "compare_started"


@dataclass(frozen=True)
class CompareFinished:
    comparison: Comparison
    type: str = "compare_finished"


@dataclass
class HostResult:
    """How one host's run ended."""

    host: HostParadigm
    run_id: str = ""
    answer: Any = None  # Answer when it succeeded
    error: str = ""
    kind: str = ""
    partial_text: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.answer is not None

    @property
    def text(self) -> str:
        return self.answer.text if self.answer is not None else self.partial_text

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(self.answer.sources) if self.answer is not None else ()

    @property
    def usage(self) -> Usage:
        return self.answer.usage if self.answer is not None else Usage()


def source_key(s: Source) -> str:
    """What makes two hosts' sources the same source: the stored passage, else its origin."""
    return s.id or s.origin or s.title


def distinctive_terms(texts: Mapping[Hashable, str], k: int = 6) -> dict[Hashable, list[str]]:
    """Per text, the terms it stresses that the others do not: TF-IDF of each text against the
    others (a term every text uses scores 0 and is never listed)."""
    def words(text: str) -> Iterator[str]:
        for w in _WORD.findall(text):
            w = w.lower().removesuffix("'s").strip("'-")
            if len(w) > 2 and w not in _STOP:
                yield w

    counts = {key: Counter(words(t)) for key, t in texts.items()}
    n = len(counts)
    df: Counter[str] = Counter()
    for c in counts.values():
        df.update(c.keys())
    out: dict[Hashable, list[str]] = {}
    for key, c in counts.items():
        total = sum(c.values()) or 1
        scored = [((cnt / total) * math.log((n + 1) / (df[w] + 1)), w) for w, cnt in c.items()]
        scored = [(s, w) for s, w in scored if s > 0]
        scored.sort(key=lambda sw: (-sw[0], sw[1]))
        out[key] = [w for _, w in scored[:k]]
    return out


@dataclass
class Comparison:
    """The hosts' answers to one question, side by side, with the footer's figures."""

    id: str
    question: str
    hosts: tuple[HostParadigm, ...]
    results: dict[HostParadigm, HostResult] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the whole comparison
    synthesis: str = ""  # "where the hosts agree / disagree" (--synthesize, with a model)
    kind: str = "compare"
    notes: list[str] = field(default_factory=list)

    @property
    def answers(self) -> dict[HostParadigm, Any]:
        return {h: r.answer for h, r in self.results.items() if r.ok}

    @property
    def failed(self) -> dict[HostParadigm, HostResult]:
        return {h: r for h, r in self.results.items() if not r.ok}

    def __getitem__(self, host: str | HostParadigm) -> Any:
        return self.answers[HostParadigm.parse(host)]

    # -- the footer's figures ----------------------------------------------------------------

    def source_usage(self) -> dict[str, tuple[Source, list[HostParadigm]]]:
        """Every source any host cited → (the source, the hosts that used it), first seen first."""
        seen: dict[str, tuple[Source, list[HostParadigm]]] = {}
        for h in self.hosts:
            r = self.results.get(h)
            for s in r.sources if r else ():
                entry = seen.setdefault(source_key(s), (s, []))
                if h not in entry[1]:
                    entry[1].append(h)
        return seen

    def shared_sources(self) -> list[Source]:
        return [s for s, hs in self.source_usage().values() if len(hs) > 1]

    def only_sources(self) -> dict[HostParadigm, list[Source]]:
        out: dict[HostParadigm, list[Source]] = {h: [] for h in self.hosts}
        for s, hs in self.source_usage().values():
            if len(hs) == 1:
                out[hs[0]].append(s)
        return out

    def distinctive(self, k: int = 6) -> dict[HostParadigm, list[str]]:
        texts = {h: r.text for h, r in self.results.items() if r.text}
        return distinctive_terms(texts, k) if len(texts) > 1 else {h: [] for h in texts}  # type: ignore[return-value]

    def sources_matrix(self):  # noqa: ANN201 - pandas.DataFrame
        """One row per source any host used, one column per host: that host's citation number
        for it (0: not used), and ``hosts``: how many used it. Shared sources first."""
        import pandas as pd

        rows = []
        for s, hs in self.source_usage().values():
            row: dict[str, Any] = {"title": s.title, "origin": s.origin}
            for h in self.hosts:
                r = self.results.get(h)
                mine = [x.n for x in (r.sources if r else ()) if source_key(x) == source_key(s)]
                row[h.value] = int(mine[0]) if mine else 0
            row["hosts"] = len(hs)
            rows.append(row)
        frame = pd.DataFrame(rows, columns=["title", "origin", *[h.value for h in self.hosts], "hosts"])
        return frame.sort_values("hosts", ascending=False, kind="stable").reset_index(drop=True)

    def host_rows(self) -> list[dict[str, Any]]:
        """Per host: status, length, tokens, cost, time, sources, distinctive terms."""
        terms = self.distinctive()
        rows = []
        for h in self.hosts:
            r = self.results.get(h) or HostResult(h, error="did not run", kind="missing")
            rows.append({
                "host": h.value,
                "status": "ok" if r.ok else (r.kind or "failed"),
                "chars": len(r.text),
                "tokens": r.usage.total_tokens,
                "cost_usd": r.usage.cost_usd,
                "seconds": round(r.seconds, 3),
                "sources": len(r.sources),
                "distinctive": list(terms.get(h, [])),
                "run_id": r.run_id,
            })  # fmt: skip
        return rows

    def to_frame(self):  # noqa: ANN201 - pandas.DataFrame
        """One row per host: the figures of ``host_rows`` and the answer text."""
        import pandas as pd

        rows = self.host_rows()
        for row in rows:
            row["distinctive"] = ", ".join(row["distinctive"])
            row["text"] = self.results[HostParadigm(row["host"])].text if HostParadigm(row["host"]) in self.results else ""
        return pd.DataFrame(rows).set_index("host")

    def summary(self) -> dict[str, Any]:
        """The footer as plain data (stored with the comparison; the CLI's final JSON object)."""
        return {
            "comparison_id": self.id,
            "question": self.question,
            "hosts": [h.value for h in self.hosts],
            "seconds": round(self.seconds, 3),
            "per_host": self.host_rows(),
            "shared_sources": [
                {"title": s.title, "origin": s.origin, "hosts": [h.value for h in hs]}
                for s, hs in self.source_usage().values() if len(hs) > 1
            ],
            "only_sources": {
                h.value: [{"title": s.title, "origin": s.origin} for s in ss]
                for h, ss in self.only_sources().items()
            },
            "synthesis": self.synthesis,
            "notes": list(self.notes),
        }

    # -- display -----------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .jupyter.grid import GridState

        return GridState.from_comparison(self)._repr_mimebundle_(include, exclude)

    def __repr__(self) -> str:
        ok = ", ".join(f"{h.value}{'' if r.ok else ' (failed)'}" for h, r in self.results.items())
        return f"<Comparison {self.id} of {len(self.hosts)} hosts: {ok}>"


# -- running -----------------------------------------------------------------------------------


async def _run_concurrently(
    streams: Mapping[Hashable, Callable[[], AsyncIterator[Any]]],
    *,
    scheduler: Any = None,
    budget: Any = None,
    estimate: Callable[[Hashable], int] | None = None,
) -> AsyncIterator[tuple[Hashable, Any]]:
    """Run every stream at once through the scheduler (one task per host, ``host=`` set);
    yield ``(key, item)`` as items arrive, in arrival order.

    ``budget`` (a batch's or the session's): each task holds ``estimate(key)`` tokens while it
    runs, so the hosts together never commit more than the budget has left; a host the budget
    can never pay for is refused before it starts (a ``RunFailed`` of kind ``budget``). No
    retries here: a stream that already yielded events cannot be replayed (the provider retries
    its own calls). A stream that raises ends the iteration with that error after the others
    are cancelled."""
    from .schedule import Scheduler

    sched = scheduler or Scheduler(max(1, len(streams)), budget=budget, retries=0)
    limited = sched.budget is not None and sched.budget.limited
    queue: asyncio.Queue[tuple[Hashable, Any]] = asyncio.Queue()
    done = object()

    async def pump(key: Hashable, make: Callable[[], AsyncIterator[Any]]) -> None:
        try:
            async for item in make():
                await queue.put((key, item))
        finally:
            await queue.put((key, done))

    async def watch(key: Hashable, handle: Any) -> None:
        try:
            await handle
        except BaseException as exc:  # noqa: BLE001 - refused before it ran, or the stream's own error
            if handle.attempts == 0 and not isinstance(exc, asyncio.CancelledError):
                await queue.put((key, RunFailed(str(exc), "budget")))
                await queue.put((key, done))
            elif handle.attempts == 0:
                await queue.put((key, done))

    handles = {
        k: sched.submit(pump, k, m, host=str(getattr(k, "value", k)), retries=0,
                        tokens=estimate(k) if (limited and estimate) else 0, name=f"fourhosts-compare-{k}")
        for k, m in streams.items()
    }  # fmt: skip
    watchers = [asyncio.create_task(watch(k, h)) for k, h in handles.items()]
    left = len(handles)
    try:
        while left:
            key, item = await queue.get()
            if item is done:
                left -= 1
                continue
            yield key, item
        for h in handles.values():  # surface a stream's own error
            if h.attempts:
                h.result()
    finally:
        for h in handles.values():
            h.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if scheduler is None:  # ours: its tasks are awaited before the stream ends
            await sched.aclose()


def _estimator(question: str, questions: Mapping[Any, str] | None, options: Mapping[str, Any],
               model: str = "") -> Callable[[Hashable], int]:
    """Tokens one host's run needs at least (its first model call): what the scheduler holds."""
    def estimate(key: Hashable) -> int:
        from .schedule.batch import item_estimate

        return item_estimate((questions or {}).get(key, question), options.get("model") or model, options.get("effort"))

    return estimate


def _seed(engine: Any) -> None:
    # Seed an empty store once, before the hosts start (else each run would try at once).
    from .memory.seed import ensure_seeded

    ensure_seeded(engine.store, engine.embedder)


async def astream_compare(
    engine: Any,
    question: str,
    hosts: str | Sequence[str | HostParadigm] | None = None,
    *,
    comparison_id: str | None = None,
    questions: Mapping[HostParadigm, str] | None = None,
    kind: str = "compare",
    save: bool = True,
    synthesize: bool = False,
    scheduler: Any = None,
    **options: Any,
) -> AsyncIterator[Any]:
    """CompareStarted, then every host's events as HostEvent (interleaved as they happen),
    then CompareFinished. ``questions``: a different question per host (a blend's parts)."""
    from .memory.store import new_id

    question = (question or "").strip()
    if not question:
        raise ConfigError("the question is empty: write a question to compare the hosts on")
    chosen = parse_hosts(hosts) if kind == "compare" else tuple(HostParadigm.parse(h) for h in hosts or ())
    options.pop("paradigm", None)
    cid = comparison_id or new_id("c_")
    yield CompareStarted(cid, question, chosen, kind)
    await asyncio.to_thread(_seed, engine)
    from .compare_shared import comparison_engine

    runner = comparison_engine(engine)  # the question embedded once; write-backs after all hosts

    comparison = Comparison(cid, question, chosen, kind=kind)
    started = time.perf_counter()
    host_started: dict[HostParadigm, float] = {}

    def make(h: HostParadigm) -> Callable[[], AsyncIterator[Any]]:
        q = (questions or {}).get(h, question)

        async def run() -> AsyncIterator[Any]:
            host_started[h] = time.perf_counter()
            async for ev in runner.astream(q, paradigm=h, **options):
                yield ev

        return run

    for h in chosen:
        comparison.results[h] = HostResult(h)
    budget = options.get("budget") if options.get("budget") is not None else getattr(engine, "budget", None)
    hosts_events = _run_concurrently({h: make(h) for h in chosen}, scheduler=scheduler, budget=budget,
                                     estimate=_estimator(question, questions, options, engine.settings.model or ""))
    try:
        # closed here when this stream is stopped: else its host tasks outlive it
        async with contextlib.aclosing(hosts_events):
            async for key, ev in hosts_events:
                host: HostParadigm = key  # type: ignore[assignment]
                r = comparison.results[host]
                if isinstance(ev, RunStarted):
                    r.run_id = ev.run_id
                elif isinstance(ev, AnswerReady):
                    r.answer, r.run_id = ev.answer, r.run_id or ev.answer.run_id
                    r.seconds = time.perf_counter() - host_started[host]
                elif isinstance(ev, RunFailed):
                    r.error, r.kind, r.partial_text = ev.error, ev.kind, ev.partial_text
                    r.seconds = time.perf_counter() - host_started.get(host, started)  # refused: never started
                yield HostEvent(host, ev)
    except BaseException:  # cut off: what the finished hosts wrote is still kept
        runner.flush()
        raise
    if synthesize:
        await _synthesize(engine, comparison, options)
    comparison.seconds = time.perf_counter() - started
    await asyncio.to_thread(_finish, runner, comparison if save else None)
    yield CompareFinished(comparison)


def _finish(runner: Any, comparison: Comparison | None) -> None:
    """The hosts' deferred write-backs, then the comparison's row: one worker-thread hop."""
    runner.flush()
    if comparison is not None:
        record(runner.store, comparison)


def synthesis_messages(c: Comparison) -> list[dict[str, str]]:
    panels = "\n\n".join(f"[{PROFILES[h].label}]\n{r.text}" for h, r in c.results.items() if r.ok)
    return [
        {"role": "system", "content": "You compare research answers written from different perspectives."},
        {"role": "user", "content": (
            f"Question: {c.question}\n\nThe answers, one per panel:\n\n{panels}\n\n"
            "Write two short sections, 'Where the hosts agree' and 'Where the hosts disagree', "
            "citing the panels by name in brackets, e.g. [Dolores]."
        )},
    ]  # fmt: skip


async def _synthesize(engine: Any, c: Comparison, options: Mapping[str, Any]) -> None:
    """The optional last pass (``--synthesize``): needs a model; offline, a note says so."""
    from .events import TextDelta
    from .llm.base import ModelRequest, ProviderUsage

    provider = engine.provider_for(options.get("model"), options.get("base_url"))
    if provider.offline or not c.answers:
        c.notes.append("--synthesize needs a model: offline, the terms each host stressed stand in for it")
        return
    text, usage = "", Usage()
    try:
        async for ev in provider.stream(ModelRequest(messages=synthesis_messages(c), question=c.question, effort="low")):
            if isinstance(ev, TextDelta):
                text += ev.text
            elif isinstance(ev, ProviderUsage):
                usage = usage + ev.usage
    except FourHostsError as exc:
        c.notes.append(f"the synthesis failed: {exc}")
        return
    c.synthesis = text.strip()
    c.notes.append(f"synthesis: {usage.total_tokens:,} tokens" if usage.total_tokens else "synthesis written by the model")


def record(store: Any, comparison: Comparison, extra: dict[str, Any] | None = None) -> None:
    from .memory.comparisons import save_comparison

    save_comparison(
        store,
        comparison.id,
        kind=comparison.kind,
        question=comparison.question,
        hosts=[h.value for h in comparison.hosts],
        run_ids=[r.run_id for r in comparison.results.values() if r.run_id],
        summary=to_jsonable({**comparison.summary(), **(extra or {})}),
    )


def stream_compare(engine: Any, question: str, hosts: Any = None, **options: Any) -> Iterator[Any]:
    """Sync twin: the comparison runs on a worker thread; its events come here in batches of
    at most ~10 a second (``None`` idle ticks in between, for a coalescing view)."""
    from .engine import STREAM_BATCH_SECONDS, _iterate_in_thread

    return _iterate_in_thread(
        lambda: astream_compare(engine, question, hosts, **options),
        ticks=True, gather=STREAM_BATCH_SECONDS, routine=(HostEvent,),
    )  # fmt: skip


async def acompare(engine: Any, question: str, hosts: Any = None, **options: Any) -> Comparison:
    result: Comparison | None = None
    async for ev in astream_compare(engine, question, hosts, **options):
        if isinstance(ev, CompareFinished):
            result = ev.comparison
    assert result is not None
    return _checked(result)


def compare(engine: Any, question: str, hosts: Any = None, **options: Any) -> Comparison:
    result: Comparison | None = None
    for ev in stream_compare(engine, question, hosts, **options):
        if isinstance(ev, CompareFinished):
            result = ev.comparison
    assert result is not None
    return _checked(result)


def _checked(c: Comparison) -> Comparison:
    """Every host failed: that is a failed comparison (one that partly failed is returned)."""
    if c.results and not c.answers:
        first = next(iter(c.results.values()))
        raise RunError(f"every host failed; {first.host}: {first.error}", kind=first.kind or "failed",
                       run_id=first.run_id, partial_text=first.partial_text)  # fmt: skip
    return c


__all__ = [
    "CompareFinished",
    "CompareStarted",
    "Comparison",
    "HostEvent",
    "HostResult",
    "acompare",
    "astream_compare",
    "compare",
    "distinctive_terms",
    "parse_hosts",
    "stream_compare",
]
