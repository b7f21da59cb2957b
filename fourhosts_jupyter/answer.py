"""The result of one research run, as the analyst keeps it (``--save VAR``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .classifier import Classification
from .events import Source, Usage


@dataclass(frozen=True)
class ToolCallRecord:
    call_id: str
    name: str
    arguments: dict[str, Any]
    status: str  # done | failed | circuit_open | …
    seconds: float
    result_preview: str = ""
    error: str = ""
    round: int = 0


@dataclass(frozen=True)
class Answer:
    run_id: str
    question: str
    text: str
    classification: Classification
    sources: tuple[Source, ...]
    provider: str
    model: str
    offline: bool
    usage: Usage = field(default_factory=Usage)
    tool_calls: tuple[ToolCallRecord, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    finish_reason: str | None = None
    evaluation: Any = None  # quality.evaluation.Evaluation: confidence and its parts

    @property
    def confidence(self) -> float | None:
        return self.evaluation.confidence if self.evaluation is not None else None

    @property
    def paradigm(self) -> str:
        return self.classification.primary.value

    def __str__(self) -> str:
        return self.text

    def to_markdown(self) -> str:
        from .render import answer_markdown

        return answer_markdown(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .render import answer_html, answer_text

        return {"text/plain": answer_text(self), "text/html": answer_html(self)}

    def to_dict(self) -> dict[str, Any]:
        from .events import to_jsonable

        return {
            "run_id": self.run_id,
            "question": self.question,
            "text": self.text,
            "classification": self.classification.to_dict(),
            "sources": [to_jsonable(s) for s in self.sources],
            "provider": self.provider,
            "model": self.model,
            "offline": self.offline,
            "usage": to_jsonable(self.usage),
            "tool_calls": [to_jsonable(t) for t in self.tool_calls],
            "timings": self.timings,
            "finish_reason": self.finish_reason,
            "evaluation": self.evaluation.to_dict() if self.evaluation is not None else None,
        }
