"""The budget guard: a provider wrapper that refuses a model call *before* it is made.

Each call's cost is estimated from its prompt (``context.tokens.count_tokens`` over the
messages and tool schemas, plus a few tokens per message) and its most output tokens (the
request's ``max_tokens``, else the cap the OpenAI providers send for its effort). The estimate
is reserved on the run's budget chain (run → batch → session) while the call streams, then
settled to the usage the server reported (the estimate when it reported none). A call that
would pass any level raises ``BudgetExceeded`` and no request leaves the process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

from ..errors import BudgetExceeded, ConfigError
from ..events import Usage
from ..llm.base import ModelRequest, ProviderEvent, ProviderUsage, WrappedProvider
from .budget import Budget

PER_MESSAGE_TOKENS = 4  # role and separators per chat message (OpenAI's own rule of thumb)
# Most output tokens when the request names none: the OpenAI providers' caps per effort.
OUTPUT_CAPS = {"low": 1000, "medium": 2000, "high": 4096}
TOOL_OUTPUT_CAP = 4096
REASONING_CAPS = {"low": 4096, "medium": 8192, "high": 16384}


@dataclass(frozen=True)
class CallEstimate:
    prompt_tokens: int
    max_output_tokens: int
    usd: float | None  # None: the model's price is unknown

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.max_output_tokens


def estimate_call(request: ModelRequest, model: str = "", *, prices: Mapping[str, Any] | None = None,
                  builtin: bool = True) -> CallEstimate:
    """Tokens (prompt + most output) and USD of one model call, before it is made."""
    from ..context.tokens import count_tokens
    from ..llm.prices import cost_usd

    prompt = 0
    for m in request.messages:
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
        prompt += PER_MESSAGE_TOKENS + count_tokens(str(content or ""))
        if m.get("tool_calls"):
            prompt += count_tokens(json.dumps(m["tool_calls"]))
    if request.tools:
        prompt += count_tokens(json.dumps(request.tools))
    out = request.max_tokens or _output_cap(model, request.effort, bool(request.tools))
    usd = cost_usd(model, Usage(prompt, out, prompt + out), prices, builtin=builtin)
    return CallEstimate(prompt, out, usd)


def _output_cap(model: str, effort: str, tools: bool) -> int:
    from ..llm.openai_chat import is_reasoning_model

    effort = effort if effort in OUTPUT_CAPS else "medium"
    if is_reasoning_model(model):
        return REASONING_CAPS[effort]
    return max(OUTPUT_CAPS[effort], TOOL_OUTPUT_CAP) if tools else OUTPUT_CAPS[effort]


class BudgetedProvider(WrappedProvider):
    """``inner`` with every call checked against ``budget`` first (see the module docstring)."""

    def __init__(self, inner: Any, budget: Budget, *, prices: Mapping[str, Any] | None = None) -> None:
        super().__init__(inner)
        self.budget = budget
        self.prices = prices
        self.refused: list[BudgetExceeded] = []

    def __getattr__(self, attr: str) -> Any:
        if attr == "complete":  # every call goes through stream(), so every call is checked
            raise AttributeError(attr)
        return super().__getattr__(attr)

    def estimate(self, request: ModelRequest) -> CallEstimate:
        return estimate_call(request, self.inner.model, prices=self.prices,
                             builtin=self.inner.name != "compatible")

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        if self.inner.offline:  # the offline engine costs nothing
            async for ev in self.inner.stream(request):
                yield ev
            return
        est = self.estimate(request)
        if est.usd is None and self.budget.needs_price:
            raise ConfigError(
                f"a USD budget is set but the price of model {self.inner.model!r} is unknown: "
                "set it with FOURHOSTS_PRICES (e.g. '{\"my-model\": [0.5, 1.5]}') or use --budget-tokens"
            )
        try:
            # raises before any request is sent; a budget shared across processes may wait
            areserve = getattr(self.budget, "areserve", None)  # for room (shared_budget.py)
            hold = (await areserve(est.tokens, est.usd) if areserve is not None
                    else self.budget.reserve(est.tokens, est.usd))
        except BudgetExceeded as exc:
            self.refused.append(exc)
            raise
        used: Usage | None = None
        try:
            async for ev in self.inner.stream(request):
                if isinstance(ev, ProviderUsage):
                    used = ev.usage if used is None else used + ev.usage
                yield ev
        finally:
            if used is not None and used.total_tokens:
                tokens = used.total_tokens
                usd = used.cost_usd if used.cost_usd is not None else est.usd
            else:  # no usage reported (or the call failed midway): charge the estimate
                tokens, usd = est.tokens, est.usd
            self.budget.settle(hold, tokens, usd)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __repr__(self) -> str:
        return f"BudgetedProvider({self.inner!r}, {self.budget.usage()})"


def guarded(provider: Any, budget: Budget | None, *, prices: Mapping[str, Any] | None = None) -> Any:
    """``provider`` behind the guard when any level of ``budget`` sets a limit, else as is."""
    if budget is None or not budget.limited:
        return provider
    return BudgetedProvider(provider, budget, prices=prices)
