"""Host collaboration (brief §2.7): the rules table decides who asks whom, and how urgently;
the helping host researches a focused prompt and returns 3–5 recommendations.

With a model the recommendations are one structured call validated by pydantic; offline
(or when the model's JSON is invalid) they are the helper's best sentences from its own
retrieval. Only priorities in ``QualityPolicy.collaborate_priorities`` run (brief: high).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pydantic

from ..errors import FourHostsError
from ..events import Source
from ..paradigms import HostParadigm, profile
from .judge import validated
from .tables import Rule, collaboration, rules

MIN_RECOMMENDATIONS, MAX_RECOMMENDATIONS = 3, 5


class RecommendationsInvalid(FourHostsError):
    """The helper's reply was not the recommendations JSON asked for."""


class Recommendation(pydantic.BaseModel):
    text: str = pydantic.Field(min_length=3, max_length=600)
    sources: list[int] = pydantic.Field(default_factory=list)


class Recommendations(pydantic.BaseModel):
    recommendations: list[Recommendation] = pydantic.Field(
        min_length=MIN_RECOMMENDATIONS, max_length=MAX_RECOMMENDATIONS
    )


@dataclass(frozen=True)
class Request:
    """One request for help, before it runs."""

    asking: HostParadigm
    helping: HostParadigm
    reason: str
    priority: str  # high | medium | low
    confidence: float
    threshold: float


def priority(confidence: float, reason: str) -> str:
    if confidence < 0.3 or reason == "protection_check":
        return "high"
    if confidence < 0.5 or reason in ("validation_required", "strategy_consult"):
        return "medium"
    return "low"


def pick_reason(rule: Rule, question: str) -> str:
    patterns = collaboration()["reason_patterns"]
    for reason in rule.reasons:
        pat = patterns.get(reason)
        if pat is not None and pat.search(question):
            return reason
    return rule.reasons[0]


def requests(host: HostParadigm, confidence: float, question: str) -> list[Request]:
    """Every rule of ``host`` whose threshold the confidence is under, in table order."""
    out = []
    for rule in rules():
        if rule.asking is host and confidence < rule.threshold:
            reason = pick_reason(rule, question)
            out.append(Request(host, rule.helping, reason, priority(confidence, reason), confidence, rule.threshold))
    return out


def reason_words(reason: str) -> str:
    return collaboration()["reason_words"].get(reason, reason.replace("_", " "))


def focus(host: HostParadigm) -> str:
    return collaboration()["focus"][host.value]


def focused_prompt(req: Request, question: str, answer: str) -> str:
    asking, helping = profile(req.asking), profile(req.helping)
    context = " ".join(answer.split())[:600]
    return (
        f"{asking.label} ({asking.stance.lower()}) asks {helping.label} for help: {reason_words(req.reason)}.\n"
        f"Question: {question}\n{asking.label}'s answer so far (confidence {req.confidence:.2f}): {context}\n"
        f"Your focus as {helping.label}: {focus(req.helping)}."
    )


def helper_sources(store: Any, question: str, req: Request, *, embedder: Any, k: int = 5) -> tuple[Source, ...]:
    """The helper's own retrieval: the question seen through its focus and its angles."""
    from ..context.select import select
    from .checks import on_topic
    from .heal import _document, angles, renumber

    found: dict[str, Source] = {}
    for q in (f"{question} {focus(req.helping)}", *(f"{question} {a}" for a in angles(req.helping)[:2])):
        for s in select(store, q, host=req.helping, k=k, embedder=embedder):
            doc = _document(s)
            if doc not in found or s.score > found[doc].score:
                found[doc] = s
    # numbered 1..k afresh: each select numbered its own hits from 1
    return renumber(sorted(on_topic(question, list(found.values()), embedder), key=lambda s: -s.score)[:k])


def offline_recommendations(question: str, req: Request, sources: Sequence[Source], embedder: Any) -> Recommendations:
    from ..llm.offline import OfflineProvider

    engine = OfflineProvider(embedder, max_sentences=MAX_RECOMMENDATIONS)
    picked = engine.pick(f"{question} {reason_words(req.reason)} {focus(req.helping)}", tuple(sources), req.helping)
    if len(picked) < MIN_RECOMMENDATIONS:
        raise RecommendationsInvalid(
            f"{profile(req.helping).label}'s retrieval holds {len(picked)} quotable sentences on this; "
            f"{MIN_RECOMMENDATIONS} are needed for a recommendation list"
        )
    return Recommendations(recommendations=[Recommendation(text=s, sources=[n]) for s, n in picked])


def model_messages(prompt: str, sources: Sequence[Source]) -> list[dict[str, Any]]:
    passages = "\n\n".join(f"[{s.n}] {s.title}\n{s.text}" for s in sources) or "(no passages)"
    return [
        {"role": "system", "content": (
            "You are a research host helping another. Reply with one JSON object and nothing else: "
            '{"recommendations": [{"text": "one recommendation", "sources": [n]}]} with 3 to 5 '
            "recommendations, each citing the numbered passages it rests on.")},
        {"role": "user", "content": f"{prompt}\n\nPassages:\n\n{passages}"},
    ]


def parse(reply: str) -> Recommendations:
    return validated(reply, Recommendations, RecommendationsInvalid,
                     "the helper's reply is not the recommendations JSON")


def merge(main: Sequence[Source], helper: Sequence[Source], recs: Recommendations) -> tuple[tuple[Source, ...], list[tuple[str, list[int]]]]:
    """The main sources (numbers unchanged: the answer cites them) plus the helper's sources that
    a recommendation cites, numbered on from the last; a source already listed (the same
    passage, or the same document) keeps its number.
    Returns them and each recommendation with its citations renumbered into that list."""
    from dataclasses import replace

    from .heal import _document

    out = list(main)
    # a passage already listed, or another passage of a document already listed, keeps its number
    by_id = {key: s.n for s in main for key in (s.id, _document(s))}
    helper_by_n = {s.n: s for s in helper}
    nxt = max((s.n for s in main), default=0)
    items: list[tuple[str, list[int]]] = []
    for r in recs.recommendations:
        cited: list[int] = []
        for n in dict.fromkeys(r.sources):
            src = helper_by_n.get(n)
            if src is None:  # the helper cited a passage it was not given: dropped
                continue
            known = by_id.get(src.id, by_id.get(_document(src)))
            if known is None:
                nxt += 1
                known = by_id[src.id] = by_id[_document(src)] = nxt
                out.append(replace(src, n=nxt))
            if known not in cited:
                cited.append(known)
        items.append((r.text.strip(), cited))
    return tuple(out), items


def insight_markdown(req: Request, items: Sequence[tuple[str, Sequence[int]]]) -> str:
    helper, asking = profile(req.helping), profile(req.asking)
    lines = [f"**Collaborative insight from {helper.label}** "
             f"(asked by {asking.label}: {reason_words(req.reason)})", ""]
    for text, ns in items:
        cites = "".join(f" [{n}]" for n in ns)
        lines.append(f"- {text}{cites}")
    return "\n".join(lines)
