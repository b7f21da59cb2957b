"""The host-aware prompt: system persona (brief §4.4) and the user message with numbered sources."""

from __future__ import annotations

from typing import Any

from .classifier import DOMINANT, SECONDARY, Classification
from .events import Source
from .paradigms import PROFILES

GENERAL = (
    "You are a research assistant working inside a Jupyter notebook. Answer the analyst's "
    "question from the numbered sources provided and the tools you are offered. Cite sources "
    "inline as [n]. Say plainly when the evidence is missing or thin; do not invent sources."
)


def system_prompt(c: Classification) -> str:
    host = c.primary
    p = PROFILES[host]
    parts = [GENERAL]
    conf = c.probabilities[host]
    if c.forced or conf > DOMINANT:
        parts.append(
            f"You are operating in the {host.value.upper()} paradigm "
            f"(confidence {round(conf * 100)}%). {p.persona}"
        )
    else:
        parts.append(f"No host perspective dominates; answer as {p.label}. {p.persona}")
    secondary = [h for h in c.ranked if h is not host and c.probabilities[h] > SECONDARY]
    if secondary:
        parts.append(
            "Secondary influences: "
            + ", ".join(f"{h.value} ({round(c.probabilities[h] * 100)}%)" for h in secondary)
            + "."
        )
    parts.append("Answer shape: " + p.answer_style)
    return "\n\n".join(parts)


def user_message(question: str, sources: tuple[Source, ...]) -> str:
    if not sources:
        return f"Question: {question}\n\n(No sources were found in memory.)"
    blocks = [f"[{s.n}] {s.title}\n{s.text}" for s in sources]
    return f"Question: {question}\n\nSources:\n\n" + "\n\n".join(blocks)


def messages(question: str, c: Classification, sources: tuple[Source, ...]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": system_prompt(c)},
        {"role": "user", "content": user_message(question, sources)},
    ]
