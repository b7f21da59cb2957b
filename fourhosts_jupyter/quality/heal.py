"""Self-healing (brief §2.6): which trigger fired, wider retrieval, a sharper re-synthesis.

Healing widens the evidence with the host's extra angles (the healing table's angles, then the
host's own search suffixes) over memory, then re-synthesises: with a model, one call with a
sharper instruction; offline, the extractive engine over the widened sources. No fixed
"confidence after": the healed answer is evaluated again like the first one.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..events import Source
from ..paradigms import HostParadigm, profile
from .evaluation import Evaluation
from .policy import QualityPolicy
from .tables import healing


def trigger(ev: Evaluation, policy: QualityPolicy, *, sources: Sequence[Source]) -> str:
    """The first trigger that fires, in the brief's order, or '' when the answer stands."""
    on = set(policy.triggers)
    if "needs_improvement" in on and ev.needs_improvement:
        return "needs_improvement"
    if "low_confidence" in on and ev.confidence < policy.low_confidence:
        return f"low_confidence ({ev.confidence:.2f} < {policy.low_confidence:.2f})"
    if "too_short" in on and ev.chars < policy.min_chars:
        return f"too_short ({ev.chars} < {policy.min_chars} characters)"
    if "no_sources" in on and (not sources or ev.sources_cited == 0):
        return "no_sources"
    if "low_metric" in on:
        low = [m for m in ev.metrics if m.score < policy.metric_floor]
        if low:
            return f"low_metric ({low[0].name} {low[0].score:.2f} < {policy.metric_floor:.2f})"
    return ""


def angles(host: HostParadigm) -> list[str]:
    table = healing()
    return list(dict.fromkeys([*table["angles"].get(host.value, table["default_angles"]),
                               *profile(host).search_suffixes]))


def widen(store: Any, question: str, sources: Sequence[Source], host: HostParadigm, *,
          embedder: Any, extra: int) -> tuple[Source, ...]:
    """The sources plus up to ``extra`` new ones found through the host's angles, renumbered."""
    from ..context.select import select

    from .checks import on_topic

    seen = {s.id for s in sources} | {_document(s) for s in sources}
    found: dict[str, Source] = {}
    for angle in angles(host):
        for s in select(store, f"{question} {angle}", host=host, k=3, embedder=embedder):
            doc = _document(s)
            if s.id not in seen and doc not in seen and (doc not in found or s.score > found[doc].score):
                found[doc] = s
    new = sorted(on_topic(question, list(found.values()), embedder), key=lambda s: -s.score)[:extra]
    return renumber([*sources, *new])


def _document(s: Source) -> str:
    """One passage per document, as select keeps it."""
    return f"doc:{s.origin or s.title}"


def renumber(sources: Sequence[Source]) -> tuple[Source, ...]:
    from dataclasses import replace

    return tuple(replace(s, n=i) for i, s in enumerate(sources, 1))


def sharper_messages(question: str, classification: Any, sources: Sequence[Source], previous: str,
                     why: str, ev: Evaluation) -> list[dict[str, Any]]:
    from .. import prompts

    host = classification.primary
    msgs = prompts.messages(question, classification, tuple(sources))
    msgs.append({
        "role": "user",
        "content": (
            f"Your previous answer was judged weak ({why}; {ev.summary()}). Write it again from "
            f"the sources above, more sources included now. {healing()['sharper'].get(host.value, '')} "
            "Cite only listed sources as [n]; say plainly what the evidence does not cover.\n\n"
            f"Previous answer:\n{previous}"
        ),
    })
    return msgs
