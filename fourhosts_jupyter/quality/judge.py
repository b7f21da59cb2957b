"""The model-judged evaluation: one structured call, its JSON validated by pydantic.

The model scores completeness, accuracy against the cited passages and clarity (0–1, a
one-line reason each) and answers a VALID/INVALID self-check. Its scores are blended with the
offline checks (half each): a model cannot talk its way past answers that cite nothing.
INVALID takes 0.2 off (brief §2.6). A reply that is not the JSON asked for raises JudgeInvalid;
the caller falls back to the offline checks and says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, Sequence, TypeVar

import pydantic

from ..errors import FourHostsError
from ..events import Source
from ..fences import unfenced
from .evaluation import Evaluation, Metric

INVALID_PENALTY = 0.2


class JudgeInvalid(FourHostsError):
    """The judge's reply was not the JSON asked for."""


class Score(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    score: float = pydantic.Field(ge=0.0, le=1.0)
    reason: str = pydantic.Field(min_length=1, max_length=300)


class Judgement(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    completeness: Score
    accuracy: Score
    clarity: Score
    verdict: Literal["VALID", "INVALID"]


SYSTEM = (
    "You evaluate a research answer against the numbered passages it was written from. "
    "Reply with one JSON object and nothing else, of this shape: "
    '{"completeness": {"score": 0-1, "reason": "one line"}, "accuracy": {"score": 0-1, '
    '"reason": "one line"}, "clarity": {"score": 0-1, "reason": "one line"}, '
    '"verdict": "VALID" | "INVALID"}. completeness: does it answer the whole question; '
    "accuracy: is every claim backed by the passage it cites; clarity: is it easy to act on. "
    "verdict INVALID when the answer is unsupported, off the question or empty."
)


def judge_messages(question: str, answer: str, sources: Sequence[Source]) -> list[dict[str, Any]]:
    passages = "\n\n".join(f"[{s.n}] {s.title}\n{s.text}" for s in sources) or "(no passages)"
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Question: {question}\n\nPassages:\n\n{passages}\n\nAnswer:\n\n{answer}"},
    ]


def parse(reply: str) -> Judgement:
    """The judgement in ``reply`` (a JSON object, optionally inside a ```json fence)."""
    return validated(reply, Judgement, JudgeInvalid, "the judge's reply is not the evaluation JSON")


M = TypeVar("M", bound=pydantic.BaseModel)


def validated(reply: str, model: type[M], error: type[Exception], what: str) -> M:
    """``reply`` (JSON, optionally fenced) as ``model``; else ``error`` saying ``what`` and the
    first problem on one line."""
    try:
        return model.model_validate_json(unfenced(reply))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "reply"
        raise error(f"{what} ({where}: {first['msg']})") from None


def combine(offline: Evaluation, j: Judgement) -> Evaluation:
    metrics = tuple(Metric(n, getattr(j, n).score, getattr(j, n).reason) for n in ("completeness", "accuracy", "clarity"))
    mean = sum(m.score for m in metrics) / len(metrics)
    conf = 0.5 * offline.confidence + 0.5 * mean
    if j.verdict == "INVALID":
        conf -= INVALID_PENALTY
    return replace(offline, confidence=round(min(1.0, max(0.0, conf)), 3), metrics=metrics,
                   verdict=j.verdict, judged_by="model")


async def ask(provider: Any, question: str, answer: str, sources: Sequence[Source]) -> tuple[str, Any]:
    """One model call, no tools; (its text, its usage)."""
    return await collect(provider, judge_messages(question, answer, sources), question=question)


async def collect(provider: Any, messages: list[dict[str, Any]], *, question: str = "") -> tuple[str, Any]:
    from ..events import Usage
    from ..llm.base import ModelRequest, ProviderText, ProviderUsage

    usage = Usage()
    parts: list[str] = []
    async for ev in provider.stream(ModelRequest(messages=messages, effort="low", question=question)):
        if isinstance(ev, ProviderText):
            parts.append(ev.text)
        elif isinstance(ev, ProviderUsage):
            usage = usage + ev.usage
    return "".join(parts), usage
