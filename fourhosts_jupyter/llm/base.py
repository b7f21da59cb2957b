"""What every model provider speaks: a request in, a stream of provider events out.

Providers are thin: they turn one model call into ProviderEvents. The tool loop, retries
across providers, persistence and views live in the engine, shared by every provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol, Union, runtime_checkable

from ..events import ReasoningDelta, TextDelta

if TYPE_CHECKING:
    from ..classifier import Classification
    from ..events import Source, Usage


@dataclass(frozen=True)
class ModelRequest:
    """One model call. ``messages`` use the Chat Completions shape (role/content/tool_calls)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None  # Chat Completions tool params
    effort: str = "medium"
    tool_choice: str | None = None  # None → provider default ("auto" when tools are given)
    max_tokens: int | None = None
    # What the offline engine answers from (a real model sees it inside ``messages``).
    question: str = ""
    classification: Classification | None = None
    sources: tuple[Source, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# Text is the one thing a provider and the engine say alike: the provider's text delta IS the
# engine's TextDelta, so it passes through the loop to the view without being rebuilt (a fast
# stream pays per chunk for every object made on the way).
ProviderText = TextDelta
# Likewise a reasoning summary piece (Responses API): passed through to the views as it is.
ProviderReasoning = ReasoningDelta


@dataclass(frozen=True)
class ProviderToolCallDelta:
    """A piece of a streamed tool call. ``index`` identifies the call within the turn; ``id``
    and ``name`` may arrive once (first chunk) or be repeated on every chunk."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class ProviderUsage:
    usage: Usage


@dataclass(frozen=True)
class ProviderFinish:
    reason: str | None  # stop | tool_calls | length | content_filter | None


ProviderEvent = Union[ProviderText, ProviderReasoning, ProviderToolCallDelta, ProviderUsage, ProviderFinish]


@runtime_checkable
class Provider(Protocol):
    name: str  # "offline" | "openai" | "azure" | "compatible" | …
    model: str
    offline: bool  # True: not a language model; the view says so

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]: ...

    async def aclose(self) -> None: ...


class WrappedProvider:
    """A provider around ``inner`` (a budget guard, a batch's shared client): ``name``, ``model``,
    ``offline`` and anything else are the inner one's, read live (a fallback chain changes them);
    subclasses override what they add."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def offline(self) -> bool:
        return self.inner.offline

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["inner"], attr)

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        return self.inner.stream(request)
