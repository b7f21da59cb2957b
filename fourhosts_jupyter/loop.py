"""The model loop: stream a model turn, run its tool calls, send results back, repeat.

CONTRACT (used by the engine):
    outcome = LoopOutcome()
    async for event in model_loop(provider, request, outcome, tools=…, runner=…, context=…,
                                  max_rounds=5, settings=…):
        ...
After the loop, ``outcome`` holds the text, finish reason, usage and tool-call records. A
provider failure is raised as a ProviderError *after* the partial text was yielded (and is
kept in ``outcome.text``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .answer import ToolCallRecord
from .config import Settings
from .events import Event, TextDelta, Usage, UsageReported
from .llm.base import ModelRequest, Provider, ProviderFinish, ProviderText, ProviderUsage


@dataclass
class LoopOutcome:
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    provider: str = ""
    model: str = ""
    offline: bool = False
    notices: list[str] = field(default_factory=list)
    rounds: int = 0


async def model_loop(
    provider: Provider,
    request: ModelRequest,
    outcome: LoopOutcome,
    *,
    tools: Any = None,
    runner: Any = None,
    context: Any = None,
    max_rounds: int = 5,
    settings: Settings | None = None,
) -> AsyncIterator[Event]:
    """Text-only first version: one round, no tools."""
    outcome.provider, outcome.model, outcome.offline = provider.name, provider.model, provider.offline
    outcome.rounds = 1
    async for ev in provider.stream(request):
        if isinstance(ev, ProviderText):
            outcome.text += ev.text
            yield TextDelta(ev.text)
        elif isinstance(ev, ProviderUsage):
            outcome.usage = outcome.usage + ev.usage
            yield UsageReported(ev.usage)
        elif isinstance(ev, ProviderFinish):
            outcome.finish_reason = ev.reason
