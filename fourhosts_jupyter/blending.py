"""Blend (brief §2.5, "Phase 7"): several hosts answer together, one unified answer.

Modes, chosen by the brief's pair rules over every pair of blended hosts: ``weighted`` by
default; ``sequential`` when a complementary pair is present (dolores+bernard, teddy+maeve);
``collaborative`` when a conflicting pair is present (dolores+teddy, maeve+teddy) — checked
last, so teddy+maeve ends collaborative, as in the original. Forced with ``mode=``.

The original's GAPs, fixed here:
- weights are renormalised over the blended hosts, so confidence is a proper weighted mean;
- more than two hosts blend when the probabilities warrant it (two reach ``BLEND``, and any
  other host within the secondary band joins them);
- the collaborative split is asked of the model as JSON validated by pydantic; anything
  invalid falls back to the round-robin split ("aspect i");
- every mode has an offline form: host-labelled sections from the extractive engine.

A composition of runs above the engine (like compare): each host's part is a real engine run
forced to that host, logged and linked to the blend's id (migration m006).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .classifier import BLEND, SECONDARY, Classification, classify
from .comparison import Comparison, HostEvent, HostResult, _estimator, _run_concurrently, record, source_key
from .errors import ConfigError, FourHostsError
from .events import AnswerReady, RunFailed, RunStarted, Source, TextDelta, Usage
from .fences import unfenced
from .paradigms import HOSTS, PROFILES, HostParadigm

MODES = ("weighted", "sequential", "collaborative")
COMPLEMENTARY = (frozenset({HostParadigm.DOLORES, HostParadigm.BERNARD}),
                 frozenset({HostParadigm.TEDDY, HostParadigm.MAEVE}))  # fmt: skip
CONFLICTING = (frozenset({HostParadigm.DOLORES, HostParadigm.TEDDY}),
               frozenset({HostParadigm.MAEVE, HostParadigm.TEDDY}))  # fmt: skip
FIXED_CONFIDENCE = {"sequential": 0.85, "collaborative": 0.88}  # brief §2.5
FORCED_FLOOR = 0.15  # a forced blend takes the top two, and any other host at least this likely
MAX_SOURCES = 20  # weighted: merged sources kept (brief §2.5)
PART_CHARS = 1200  # offline: longest part of a host's answer quoted in the unified answer


def parse_mode(value: str | None) -> str | None:
    """``None``/``""``/``"auto"`` → None (chosen by the pair rules); else one of MODES."""
    if value is None or value.strip().lower() in ("", "auto"):
        return None
    mode = value.strip().lower()
    if mode not in MODES:
        raise ConfigError(f"unknown blend mode {value!r}: use weighted, sequential or collaborative (or nothing for auto)")
    return mode


def blend_hosts(probabilities: Mapping[HostParadigm, float], *, forced: bool = False) -> tuple[HostParadigm, ...]:
    """The hosts to blend, most likely first; () when the question does not call for a blend.

    Automatic: two or more hosts reach ``BLEND`` (0.35); then every other host above the
    secondary band (> 0.25) joins them (a 0.35 cut alone can never pick three). Forced: the top
    two, and any other host with p ≥ ``FORCED_FLOOR``."""
    ranked = sorted(HOSTS, key=lambda h: (-probabilities.get(h, 0.0), HOSTS.index(h)))
    core = [h for h in ranked if probabilities.get(h, 0.0) >= BLEND]
    if len(core) >= 2:
        return tuple(h for h in ranked if h in core or probabilities.get(h, 0.0) > SECONDARY)
    if not forced:
        return ()
    return tuple(ranked[:2] + [h for h in ranked[2:] if probabilities.get(h, 0.0) >= FORCED_FLOOR])


def choose_mode(hosts: Sequence[HostParadigm]) -> tuple[str, str]:
    """(mode, why) by the brief's pair rules over every pair of the blended hosts."""
    pairs = [frozenset({a, b}) for i, a in enumerate(hosts) for b in hosts[i + 1 :]]
    mode, why = "weighted", "no complementary or conflicting pair: weighted (the default)"
    for pair in pairs:
        if pair in COMPLEMENTARY:
            mode, why = "sequential", f"{' + '.join(sorted(pair))} complement each other: sequential"
    for pair in pairs:  # checked last, as in the original: a conflict wins
        if pair in CONFLICTING:
            mode, why = "collaborative", f"{' + '.join(sorted(pair))} pull in different directions: collaborative"
    return mode, why


def weights(probabilities: Mapping[HostParadigm, float], hosts: Sequence[HostParadigm]) -> dict[HostParadigm, float]:
    """Each blended host's weight: its probability renormalised over the blended hosts (sums to 1)."""
    total = sum(max(0.0, probabilities.get(h, 0.0)) for h in hosts)
    if total <= 0:
        return {h: 1 / len(hosts) for h in hosts}
    return {h: max(0.0, probabilities.get(h, 0.0)) / total for h in hosts}


def confidence(mode: str, w: Mapping[HostParadigm, float]) -> float:
    """weighted: Σ weight · host base confidence (a weighted mean: weights sum to 1); the other
    modes' confidence is fixed by the brief."""
    if mode in FIXED_CONFIDENCE:
        return FIXED_CONFIDENCE[mode]
    return sum(weight * PROFILES[h].base_confidence for h, weight in w.items())


# -- the collaborative split -----------------------------------------------------------------


class SubProblem(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    sub_query: str = Field(alias="subQuery", min_length=3)
    assigned_paradigm: HostParadigm = Field(alias="assignedParadigm")
    rationale: str = ""


class Split(BaseModel):
    problems: list[SubProblem]


def round_robin(question: str, hosts: Sequence[HostParadigm]) -> dict[HostParadigm, str]:
    """The fallback split: each host takes "(aspect i)" of the question, as the original did."""
    return {h: f"{question} (aspect {i + 1}: {PROFILES[h].stance.lower()})" for i, h in enumerate(hosts)}


def parse_split(text: str, hosts: Sequence[HostParadigm]) -> dict[HostParadigm, str] | None:
    """The model's split, validated: a JSON list of {subQuery, assignedParadigm, rationale}
    giving each blended host exactly one sub-problem; None when it is anything else."""
    raw = unfenced(text)
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            data = data.get("problems", data.get("subProblems"))
        problems = Split.model_validate({"problems": data}).problems
    except (ValueError, ValidationError):
        return None
    out = {p.assigned_paradigm: p.sub_query.strip() for p in problems}
    if len(problems) != len(hosts) or set(out) != set(hosts):
        return None
    return {h: out[h] for h in hosts}


def split_messages(question: str, hosts: Sequence[HostParadigm]) -> list[dict[str, str]]:
    names = ", ".join(f"{h.value} ({PROFILES[h].stance})" for h in hosts)
    return [
        {"role": "system", "content": "You split research questions into sub-problems. Reply with JSON only."},
        {"role": "user", "content": (
            f"Split this question into exactly {len(hosts)} sub-problems, one for each of these "
            f"perspectives: {names}. Reply with a JSON list of objects with the keys subQuery, "
            f"assignedParadigm (one of: {', '.join(h.value for h in hosts)}) and rationale.\n\n"
            f"Question: {question}"
        )},
    ]  # fmt: skip


def synthesis_messages(question: str, plan: BlendPlan, parts: Mapping[HostParadigm, str]) -> list[dict[str, str]]:
    sections = "\n\n".join(
        f"## {PROFILES[h].label} ({PROFILES[h].stance}), weight {round(plan.weights[h] * 100)}%\n{parts.get(h, '')}"
        for h in plan.hosts
    )
    how = {
        "weighted": "Write one unified answer that weighs each perspective by its weight and says which perspective each point comes from, with its weight.",
        "sequential": "The perspectives were written in order, each building on the ones before. Integrate them into one answer, keeping the order of reasoning.",
        "collaborative": "Each perspective answered one sub-problem. Merge them into one answer that covers every sub-problem.",
    }[plan.mode]
    return [
        {"role": "system", "content": "You combine several research perspectives into one answer. Keep their citations."},
        {"role": "user", "content": f"Question: {question}\n\n{how}\n\n{sections}"},
    ]


# -- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlendPlan:
    mode: str
    hosts: tuple[HostParadigm, ...]
    weights: dict[HostParadigm, float]
    why: str  # why these hosts and this mode
    confidence: float
    forced: bool = False
    questions: dict[HostParadigm, str] = field(default_factory=dict)  # collaborative sub-problems
    split: str = ""  # collaborative: "model" | "round-robin (…)"


def plan_blend(classification: Classification, mode: str | None = None, *, forced: bool = False) -> BlendPlan | None:
    """The blend for this classification: None when nothing calls for one (and not forced)."""
    hosts = blend_hosts(classification.probabilities, forced=forced or mode is not None)
    if len(hosts) < 2:
        return None
    chosen, why = choose_mode(hosts)
    if mode is not None:
        why = f"forced: {mode} (the pair rules would pick {chosen}: {why})"
        chosen = mode
    pct = " + ".join(f"{h.value} {round(classification.probabilities[h] * 100)}%" for h in hosts)
    qualify = "forced blend of the most likely hosts" if len(
        [h for h in hosts if classification.probabilities[h] >= BLEND]) < 2 else f"{len(hosts)} hosts qualify (p ≥ {BLEND} for two, > {SECONDARY} to join)"
    w = weights(classification.probabilities, hosts)
    return BlendPlan(chosen, hosts, w, f"{qualify}: {pct}; {why}", confidence(chosen, w), forced or mode is not None)


@dataclass(frozen=True)
class BlendStarted:
    comparison_id: str
    question: str
    plan: BlendPlan
    classification: Classification
    type: str = "blend_started"


@dataclass(frozen=True)
class SplitDecided:
    questions: dict[HostParadigm, str]
    split: str  # "model" | "round-robin (…)"
    type: str = "blend_split"


@dataclass(frozen=True)
class UnifiedDelta:
    text: str
    type: str = "blend_text"


@dataclass
class BlendResult:
    """A blend's outcome: the plan, each host's part (a Comparison of the runs), the unified answer."""

    plan: BlendPlan
    parts: Comparison
    text: str = ""
    sources: tuple[Source, ...] = ()
    usage: Usage = field(default_factory=Usage)
    offline: bool = True
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return self.parts.id

    def summary(self) -> dict[str, Any]:
        p = self.plan
        return {
            **self.parts.summary(),
            "blend": {
                "mode": p.mode,
                "hosts": [h.value for h in p.hosts],
                "weights": {h.value: round(p.weights[h], 4) for h in p.hosts},
                "why": p.why,
                "confidence": round(p.confidence, 4),
                "questions": {h.value: q for h, q in p.questions.items()},
                "split": p.split,
                "text": self.text,
                "offline": self.offline,
                "sources": [{"n": s.n, "title": s.title, "origin": s.origin} for s in self.sources],
            },
        }

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .jupyter.blend_view import BlendState

        return BlendState.from_result(self)._repr_mimebundle_(include, exclude)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class BlendFinished:
    result: BlendResult
    type: str = "blend_finished"


def merged_sources(parts: Comparison, w: Mapping[HostParadigm, float]) -> tuple[Source, ...]:
    """Sources of every part, each scored by the sum of the weights of the hosts that used it
    (brief §2.5), the top ``MAX_SOURCES``, renumbered."""
    from dataclasses import replace

    score: dict[str, float] = {}
    first: dict[str, Source] = {}
    for h, r in parts.results.items():
        for s in r.sources:
            k = source_key(s)
            first.setdefault(k, s)
            score[k] = score.get(k, 0.0) + w.get(h, 0.0)
    keys = sorted(score, key=lambda k: -score[k])[:MAX_SOURCES]
    return tuple(replace(first[k], n=i + 1, score=round(score[k], 4)) for i, k in enumerate(keys))


def offline_text(plan: BlendPlan, parts: Comparison, texts: Mapping[HostParadigm, str] | None = None) -> str:
    """The offline unified answer: one host-labelled section per part, in the plan's order.
    ``texts``: the parts with their citations renumbered to the merged list (blend_citations)."""
    intro = {
        "weighted": "Each host's part below is weighted by how strongly the question calls for it.",
        "sequential": "The hosts answered in turn, each given the insights of those before it.",
        "collaborative": "The question was split into one sub-problem per host.",
    }[plan.mode]
    lines = [f"*Offline blend ({plan.mode}): host-labelled sections from the extractive engine. {intro}*", ""]
    for h in plan.hosts:
        r = parts.results.get(h)
        p = PROFILES[h]
        lines.append(f"### {p.emoji} {p.label} ({p.stance}) — weight {round(plan.weights[h] * 100)}%")
        if h in plan.questions and plan.mode == "collaborative":
            lines.append(f"*Sub-problem: {plan.questions[h]}*")
        body = _body((texts or {}).get(h, r.text)) if r is not None and r.ok else f"(no answer: {r.error if r else 'did not run'})"
        lines += ["", body, ""]
    return "\n".join(lines).strip() + "\n"


def _body(text: str) -> str:
    # The extractive engine's own first line says it is offline; the section heading says whose.
    kept = [ln for ln in text.strip().splitlines() if not ln.startswith("*Offline extractive answer")]
    body = "\n".join(kept).strip()
    if len(body) > PART_CHARS:
        cut = body.rfind("\n", 0, PART_CHARS)
        body = body[: cut if cut > 0 else PART_CHARS].rstrip() + "\n\n…"
    return body


def _insight(text: str, limit: int = 600) -> str:
    body = _body(text)
    return body[:limit]


async def astream_blend(
    engine: Any,
    question: str,
    *,
    mode: str | None = None,
    force: bool = True,
    classification: Classification | None = None,
    **options: Any,
) -> AsyncIterator[Any]:
    """BlendStarted, (SplitDecided,) HostEvent…, UnifiedDelta…, BlendFinished.

    ``force``: blend the most likely hosts even when the question does not call for it (an
    explicit ``--blend``); else ConfigError when fewer than two hosts qualify."""
    import asyncio

    from .llm.base import ModelRequest
    from .memory.store import new_id

    question = (question or "").strip()
    if not question:
        raise ConfigError("the question is empty: write a question to blend the hosts on")
    mode = parse_mode(mode)
    options.pop("paradigm", None)
    started = time.perf_counter()
    if classification is None:
        classification = await asyncio.to_thread(classify, question, embedder=engine.embedder)
    plan = plan_blend(classification, mode, forced=force)
    if plan is None:
        raise ConfigError("no blend: fewer than two hosts qualify for this question; force one with --blend MODE")
    cid = new_id("c_")
    yield BlendStarted(cid, question, plan, classification)
    provider = engine.provider_for(options.get("model"), options.get("base_url"))
    from .comparison import _seed

    await asyncio.to_thread(_seed, engine)

    async def ask(messages: list[dict[str, str]]) -> AsyncIterator[Any]:
        req = ModelRequest(messages=messages, question=question, classification=classification,
                           sources=(), effort="low")  # fmt: skip
        async for ev in provider.stream(req):
            yield ev

    if plan.mode == "collaborative":
        questions, how = round_robin(question, plan.hosts), "round-robin (offline: no model to split the question)"
        if not provider.offline:
            text = ""
            try:
                async for ev in ask(split_messages(question, plan.hosts)):
                    if isinstance(ev, TextDelta):
                        text += ev.text
            except FourHostsError as exc:
                text = f"<failed: {exc}>"
            split = parse_split(text, plan.hosts)
            if split is not None:
                questions, how = split, "model (validated JSON)"
            else:
                how = "round-robin (the model's split was not valid JSON for these hosts)"
        plan = _with(plan, questions=questions, split=how)
        yield SplitDecided(questions, how)

    parts = Comparison(cid, question, plan.hosts, kind="blend")
    for h in plan.hosts:
        parts.results[h] = HostResult(h)
    t0: dict[HostParadigm, float] = {}

    def fold(host: HostParadigm, ev: Any) -> None:
        r = parts.results[host]
        if isinstance(ev, RunStarted):
            r.run_id = ev.run_id
        elif isinstance(ev, AnswerReady):
            r.answer, r.seconds = ev.answer, time.perf_counter() - t0[host]
        elif isinstance(ev, RunFailed):
            r.error, r.kind, r.partial_text = ev.error, ev.kind, ev.partial_text
            r.seconds = time.perf_counter() - t0.get(host, started)  # refused: never started

    from .compare_shared import comparison_engine

    runner = comparison_engine(engine)  # as compare: shared embeddings, write-backs at the end

    def run(host: HostParadigm, q: str):  # noqa: ANN202
        async def go() -> AsyncIterator[Any]:
            t0[host] = time.perf_counter()
            async for ev in runner.astream(q, paradigm=host, **options):
                yield ev

        return go

    if plan.mode == "sequential":
        insights: list[str] = []
        for h in plan.hosts:
            q = question
            if insights:
                q = question + "\n\nInsights so far from the other hosts:\n" + "\n\n".join(insights)
            async for ev in run(h, q)():
                fold(h, ev)
                yield HostEvent(h, ev)
            r = parts.results[h]
            if r.ok:
                insights.append(f"{PROFILES[h].label}: {_insight(r.text)}")
    else:
        questions = plan.questions or {h: question for h in plan.hosts}
        budget = options.get("budget") if options.get("budget") is not None else getattr(engine, "budget", None)
        hosts_events = _run_concurrently({h: run(h, questions[h]) for h in plan.hosts}, budget=budget,
                                         estimate=_estimator(question, questions, options, engine.settings.model or ""))
        async with contextlib.aclosing(hosts_events):  # a stopped blend stops its hosts' tasks
            async for key, ev in hosts_events:
                fold(key, ev)  # type: ignore[arg-type]
                yield HostEvent(key, ev)  # type: ignore[arg-type]
    parts.seconds = time.perf_counter() - started

    from .blend_citations import renumbered_texts

    result = BlendResult(plan, parts, sources=merged_sources(parts, plan.weights), offline=provider.offline)
    texts = renumbered_texts(parts, result.sources)  # every [n] points into result.sources
    if provider.offline or not parts.answers:
        result.text = offline_text(plan, parts, texts)
        yield UnifiedDelta(result.text)
    else:
        from .events import UsageReported
        from .llm.base import ProviderUsage

        try:
            async for ev in ask(synthesis_messages(question, plan, texts)):
                if isinstance(ev, TextDelta):
                    result.text += ev.text
                    yield UnifiedDelta(ev.text)
                elif isinstance(ev, (ProviderUsage, UsageReported)):
                    result.usage = result.usage + ev.usage
        except FourHostsError as exc:  # the parts stand; say why there is no synthesis
            note = f"\n\n*The synthesis failed ({exc}); the hosts' parts are shown below.*\n\n" + offline_text(plan, parts, texts)
            result.text += note
            yield UnifiedDelta(note)
    result.seconds = time.perf_counter() - started
    await asyncio.to_thread(runner.flush)
    await asyncio.to_thread(record, engine.store, parts, {"blend": result.summary()["blend"]})
    yield BlendFinished(result)


def _with(plan: BlendPlan, **changes: Any) -> BlendPlan:
    from dataclasses import replace

    return replace(plan, **changes)


def stream_blend(engine: Any, question: str, **options: Any) -> Iterator[Any]:
    """Sync twin of ``astream_blend`` (batched ~10/s, idle ticks), as ``compare.stream_compare``."""
    from .engine import STREAM_BATCH_SECONDS, _iterate_in_thread

    return _iterate_in_thread(
        lambda: astream_blend(engine, question, **options),
        ticks=True, gather=STREAM_BATCH_SECONDS, routine=(HostEvent, UnifiedDelta),
    )  # fmt: skip


def blend(engine: Any, question: str, **options: Any) -> BlendResult:
    result: BlendResult | None = None
    for ev in stream_blend(engine, question, **options):
        if isinstance(ev, BlendFinished):
            result = ev.result
    assert result is not None
    return result


__all__ = [
    "MODES",
    "BlendFinished",
    "BlendPlan",
    "BlendResult",
    "BlendStarted",
    "SplitDecided",
    "SubProblem",
    "UnifiedDelta",
    "astream_blend",
    "blend",
    "blend_hosts",
    "choose_mode",
    "confidence",
    "offline_text",
    "parse_mode",
    "parse_split",
    "plan_blend",
    "round_robin",
    "stream_blend",
    "weights",
]
