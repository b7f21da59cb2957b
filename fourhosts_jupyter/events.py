"""The typed event stream: what a research run says while it runs.

Events are frozen dataclasses, pure values. The engine yields them; the cell view, the
terminal view and the run log consume them. Nothing here imports IPython.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .classifier import Classification


@dataclass(frozen=True)
class Source:
    """A piece of evidence selected for a run; ``n`` is its citation number."""

    n: int
    id: str
    title: str
    text: str
    score: float = 0.0
    origin: str = ""  # file path, URL, run id or tool name
    namespace: str = ""
    reasons: tuple[str, ...] = ()
    date: str = ""  # a web source's date: published when it says, else the day it was fetched


@dataclass(frozen=True)
class Usage:
    """Tokens of one or more model calls and what they cost.

    ``cost_usd`` None means the price is unknown (a local server, an unlisted model), which is
    not the same as $0: see ``llm.prices``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    cached_tokens: int = 0  # prompt tokens served from the provider's cache (cheaper)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            _add_cost(self, other),
            self.cached_tokens + other.cached_tokens,
        )


def _add_cost(a: Usage, b: Usage) -> float | None:
    # An empty Usage() (no tokens, no price) is the identity, so sums may start from it; else
    # one unpriced part makes the total unknown: a partial sum would understate the cost.
    if a.cost_usd is None and not (a.total_tokens or a.prompt_tokens or a.completion_tokens):
        return b.cost_usd
    if b.cost_usd is None and not (b.total_tokens or b.prompt_tokens or b.completion_tokens):
        return a.cost_usd
    if a.cost_usd is None or b.cost_usd is None:
        return None
    return a.cost_usd + b.cost_usd


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    question: str
    options: dict[str, Any]
    type: str = "run_started"


@dataclass(frozen=True)
class Classified:
    classification: Classification
    type: str = "classified"


@dataclass(frozen=True)
class LayerStarted:
    """A stage of the run began. ``layer`` is a context layer or classify / model."""

    layer: str
    label: str
    type: str = "layer_started"


@dataclass(frozen=True)
class LayerFinished:
    layer: str
    seconds: float
    detail: str = ""
    fallback: bool = False  # the layer failed and its fallback was used
    type: str = "layer_finished"


@dataclass(frozen=True)
class SourcesSelected:
    sources: tuple[Source, ...]
    type: str = "sources_selected"


@dataclass(frozen=True)
class Notice:
    """Something the analyst should see that is not an error (e.g. provider switched)."""

    message: str
    level: str = "info"  # info | warning
    type: str = "notice"


@dataclass(frozen=True)
class TextDelta:
    text: str
    type: str = "text_delta"


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning summary (Responses API reasoning models). Shown apart
    from the answer ("Thinking"); never part of the answer text, the memory or the run log."""

    text: str
    type: str = "reasoning_delta"


@dataclass(frozen=True)
class ToolCallStarted:
    call_id: str
    name: str
    index: int = 0
    round: int = 0
    type: str = "tool_call_started"


@dataclass(frozen=True)
class ToolCallArgumentsDelta:
    call_id: str
    delta: str
    type: str = "tool_call_arguments_delta"


@dataclass(frozen=True)
class ToolCallRunning:
    call_id: str
    name: str
    arguments: dict[str, Any]
    type: str = "tool_call_running"


@dataclass(frozen=True)
class ToolCallFinished:
    call_id: str
    name: str
    result: Any
    seconds: float
    preview: str = ""
    type: str = "tool_call_finished"


@dataclass(frozen=True)
class ToolCallFailed:
    call_id: str
    name: str
    error: str
    kind: str  # unknown_tool | bad_arguments | timeout | circuit_open | tool_error
    seconds: float = 0.0
    retryable: bool = False
    type: str = "tool_call_failed"


@dataclass(frozen=True)
class UsageReported:
    usage: Usage
    type: str = "usage"


@dataclass(frozen=True)
class AnswerReady:
    """The run finished; ``answer`` is the full result object."""

    answer: Any  # fourhosts_jupyter.answer.Answer (kept Any to avoid an import cycle)
    type: str = "answer"


@dataclass(frozen=True)
class RunFailed:
    error: str
    kind: str
    partial_text: str = ""
    type: str = "error"


@dataclass(frozen=True)
class Evaluated:
    """The evaluation stage's finding (quality/): ``evaluation`` is a quality Evaluation."""

    evaluation: Any
    label: str = "answer"  # answer | healed
    type: str = "evaluated"


@dataclass(frozen=True)
class Healed:
    """A self-healing round ended (brief §2.6): what set it off, confidence before and after."""

    trigger: str
    before: float
    after: float
    kept: bool  # the healed answer replaced the first (it scored higher)
    added_sources: int = 0
    detail: str = ""
    type: str = "healed"


@dataclass(frozen=True)
class AnswerRevised:
    """The answer text and sources after the run's answer was healed or extended."""

    text: str
    sources: tuple[Source, ...]
    reason: str  # healed | collaboration
    type: str = "answer_revised"


@dataclass(frozen=True)
class Collaborated:
    """One host asked another for help (brief §2.7) and what came of it."""

    asking: str
    helping: str
    reason: str
    priority: str  # high | medium | low
    status: str  # done | declined | failed
    confidence: float
    threshold: float
    recommendations: int = 0
    detail: str = ""
    type: str = "collaboration"


Event = Union[
    RunStarted,
    Classified,
    LayerStarted,
    LayerFinished,
    SourcesSelected,
    Notice,
    TextDelta,
    ReasoningDelta,
    ToolCallStarted,
    ToolCallArgumentsDelta,
    ToolCallRunning,
    ToolCallFinished,
    ToolCallFailed,
    UsageReported,
    AnswerReady,
    RunFailed,
    Evaluated,
    Healed,
    AnswerRevised,
    Collaborated,
]


def to_jsonable(value: Any) -> Any:
    """Turn an event (or anything inside one) into plain JSON-able data for the run log."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


