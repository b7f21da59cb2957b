"""The post-answer hook: evaluate → heal (at most ``healing_rounds``) → collaborate → record.

Called by the engine once the model stage has answered; works on a ``Draft`` (the answer text
and its sources) and yields typed events. The engine keeps whatever the draft holds at the end.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from ..errors import FourHostsError
from ..events import (
    AnswerRevised,
    Collaborated,
    Evaluated,
    Event,
    Healed,
    LayerFinished,
    LayerStarted,
    Notice,
    Source,
    Usage,
)
from ..paradigms import profile
from .evaluation import Evaluation
from .policy import QualityPolicy


@dataclass
class Draft:
    run_id: str
    question: str
    text: str
    sources: tuple[Source, ...]
    classification: Any
    usage: Usage = field(default_factory=Usage)
    evaluation: Evaluation | None = None
    record: dict[str, Any] = field(default_factory=dict)  # what the run log's columns keep


async def improve(draft: Draft, *, provider: Any, store: Any, embedder: Any,
                  policy: QualityPolicy | None = None) -> AsyncIterator[Event]:
    policy = policy or QualityPolicy()
    if not policy.evaluate:
        return
    async for e in _evaluate(draft, provider, embedder, policy, "answer"):
        yield e
    ev = draft.evaluation
    assert ev is not None
    draft.record = {"confidence": ev.confidence, "evaluation": ev.to_dict(), "healing": [], "collaboration": []}

    for _ in range(policy.healing_rounds):
        from .heal import trigger

        why = trigger(ev, policy, sources=draft.sources)
        if not why:
            break
        async for e in _heal(draft, why, ev, provider=provider, store=store, embedder=embedder, policy=policy):
            yield e
        ev = draft.evaluation
        assert ev is not None

    if policy.collaboration:
        async for e in _collaborate(draft, ev, provider=provider, store=store, embedder=embedder, policy=policy):
            yield e

    draft.record["confidence"] = draft.evaluation.confidence if draft.evaluation else None
    await asyncio.to_thread(record, store, draft.run_id, draft.record)


async def _evaluate(draft: Draft, provider: Any, embedder: Any, policy: QualityPolicy, label: str,
                    text: str | None = None, sources: tuple[Source, ...] | None = None) -> AsyncIterator[Event]:
    """Evaluate ``text`` over ``sources`` (default: the draft's); the result in draft.evaluation."""
    from . import judge
    from .checks import evaluate_offline

    text = draft.text if text is None else text
    sources = draft.sources if sources is None else sources
    words = "🔎 Evaluating the answer" if label == "answer" else "🔎 Evaluating the healed answer"
    yield LayerStarted("evaluate", words)
    t = time.perf_counter()
    ev = await asyncio.to_thread(evaluate_offline, draft.question, text, sources, embedder=embedder)
    if policy.judge_with_model and not getattr(provider, "offline", True):
        try:  # the answer stands whatever the judge does: its failure is a notice, not the run's
            reply, usage = await judge.ask(provider, draft.question, text, sources)
            draft.usage = draft.usage + usage
            ev = judge.combine(ev, judge.parse(reply))
        except FourHostsError as exc:
            yield Notice(f"{exc}; the confidence comes from the offline checks alone.", "warning")
    draft.evaluation = ev
    yield Evaluated(ev, label)
    yield LayerFinished("evaluate", time.perf_counter() - t, ev.summary())


async def _heal(draft: Draft, why: str, before: Evaluation, *, provider: Any, store: Any, embedder: Any,
                policy: QualityPolicy) -> AsyncIterator[Event]:
    from . import heal, judge, web_heal
    from ..llm.base import ModelRequest

    host = draft.classification.primary
    yield LayerStarted("healing", f"🩹 Healing ({why})")
    t = time.perf_counter()
    web = None
    try:
        use_web = await asyncio.to_thread(web_heal.configured, host)
    except FourHostsError as exc:
        use_web = False
        yield Notice(f"healing: the web is not searched ({exc}); healing goes on over memory.", "warning")
    if use_web:  # the pages land in the host's memory, where widen finds them
        web = await asyncio.to_thread(web_heal.gather, store, draft.question, host, heal.angles(host),
                                      draft.sources, run_id=draft.run_id, embedder=embedder)
        for note in web.notices:
            yield Notice(f"healing: {note}; healing goes on over memory.", "warning")
    widened = await asyncio.to_thread(heal.widen, store, draft.question, draft.sources, host,
                                      embedder=embedder, extra=policy.extra_k)
    added = len(widened) - len(draft.sources)
    compose = getattr(provider, "compose", None)
    if getattr(provider, "offline", False) and compose is not None:
        text = await asyncio.to_thread(compose, ModelRequest(
            messages=[], question=draft.question, classification=draft.classification, sources=widened))
    else:
        try:
            text, usage = await judge.collect(provider, heal.sharper_messages(
                draft.question, draft.classification, widened, draft.text, why, before), question=draft.question)
            draft.usage = draft.usage + usage
        except FourHostsError as exc:
            text = ""
            yield Notice(f"the healing call failed ({exc}); the first answer stands.", "warning")
    first = draft.evaluation
    async for e in _evaluate(draft, provider, embedder, policy, "healed", text, widened):
        yield e
    after = draft.evaluation
    assert after is not None and first is not None
    kept = after.confidence > before.confidence
    more = f"{added} more sources" + (f" ({web.words()})" if web is not None and web.words() else "")
    if kept:
        draft.text, draft.sources = text, widened
        yield AnswerRevised(text, widened, "healed")
        detail = f"{more}; confidence {before.confidence:.2f} → {after.confidence:.2f}"
    else:  # the first answer stands, and its evaluation with it
        draft.evaluation = first
        detail = (f"{more}; the healed answer scored {after.confidence:.2f}, not above "
                  f"{before.confidence:.2f}: the first answer stands")
    draft.record["healing"].append({
        "trigger": why, "before": before.confidence, "after": after.confidence, "kept": kept,
        "added_sources": added, "host": host.value, "healed_evaluation": after.to_dict(),
        **({"web": web.to_dict()} if web is not None else {}),
    })
    yield Healed(why, before.confidence, after.confidence, kept, added, detail)
    yield LayerFinished("healing", time.perf_counter() - t, detail)


async def _collaborate(draft: Draft, ev: Evaluation, *, provider: Any, store: Any, embedder: Any,
                       policy: QualityPolicy) -> AsyncIterator[Event]:
    from . import collaborate as co

    host = draft.classification.primary
    ran = False
    for req in co.requests(host, ev.confidence, draft.question):
        base = dict(asking=req.asking.value, helping=req.helping.value, reason=req.reason, priority=req.priority,
                    confidence=req.confidence, threshold=req.threshold)
        if req.priority not in policy.collaborate_priorities or ran:
            why = "one collaboration per run" if ran else f"{req.priority} priority: only {', '.join(policy.collaborate_priorities)} run"
            draft.record["collaboration"].append({**base, "status": "declined", "detail": why})
            yield Collaborated(**base, status="declined", detail=why)
            continue
        ran = True
        helper = profile(req.helping).label
        yield LayerStarted("collaborate", f"🤝 {profile(req.asking).label} asks {helper}: {co.reason_words(req.reason)}")
        t = time.perf_counter()
        try:
            found = await asyncio.to_thread(co.helper_sources, store, draft.question, req, embedder=embedder)
            recs = None
            if not getattr(provider, "offline", True):
                from .judge import collect

                reply, usage = await collect(provider, co.model_messages(
                    co.focused_prompt(req, draft.question, draft.text), found), question=draft.question)
                draft.usage = draft.usage + usage
                try:
                    recs = co.parse(reply)
                except co.RecommendationsInvalid as exc:
                    yield Notice(f"{exc}; {helper}'s recommendations are quoted from its retrieval instead.", "warning")
            if recs is None:
                recs = await asyncio.to_thread(co.offline_recommendations, draft.question, req, found, embedder)
        except FourHostsError as exc:
            detail = str(exc)
            draft.record["collaboration"].append({**base, "status": "failed", "detail": detail})
            yield Collaborated(**base, status="failed", detail=detail)
            yield LayerFinished("collaborate", time.perf_counter() - t, detail)
            continue
        sources, items = co.merge(draft.sources, found, recs)
        insight = co.insight_markdown(req, items)
        draft.text = draft.text.rstrip() + "\n\n" + insight + "\n"
        draft.sources = sources
        await asyncio.to_thread(_remember, store, draft, req, insight, embedder)
        detail = f"{len(items)} recommendations from {helper}"
        draft.record["collaboration"].append({**base, "status": "done", "recommendations": [t for t, _ in items]})
        yield AnswerRevised(draft.text, draft.sources, "collaboration")
        yield Collaborated(**base, status="done", recommendations=len(items), detail=detail)
        yield LayerFinished("collaborate", time.perf_counter() - t, detail)


def _remember(store: Any, draft: Draft, req: Any, insight: str, embedder: Any) -> None:
    """Both hosts keep the exchange (brief: density 85, long-term)."""
    from ..context.write import write_memory

    text = f"Question: {draft.question}\n{insight}"
    for ns in (req.asking, req.helping):
        write_memory(store, text, namespace=ns, key="collaboration", density=85, source="run",
                     title=f"collaboration {req.asking.value} → {req.helping.value}: {draft.question[:80]}",
                     metadata={"kind": "collaboration", "run_id": draft.run_id, "asking": req.asking.value,
                               "helping": req.helping.value, "reason": req.reason},
                     embedder=embedder)


def record(store: Any, run_id: str, data: dict[str, Any]) -> None:
    """The evaluation, healing and collaboration of a run, on its row (migration m007)."""
    with store.connect() as con:
        con.execute("UPDATE runs SET confidence = ?, evaluation = ? WHERE id = ?",
                    [data.get("confidence"), json.dumps(data), run_id])
