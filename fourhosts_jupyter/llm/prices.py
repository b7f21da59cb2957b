"""What a model call cost, from list prices. ``None`` means "price unknown", never $0.

The built-in table holds OpenAI's *list* prices, standard tier, in USD per 1M tokens, as
published on https://platform.openai.com/docs/pricing (openai.com/api/pricing) in August
2025, after the gpt-5 launch and the June 2025 o3 price cut. Batch, Flex and Priority
processing, negotiated discounts and Azure regional / data-zone deployments cost differently;
prices change. Override or extend the table with ``FOURHOSTS_PRICES`` (JSON, see
``parse_prices``) or ``Settings(prices=…)``.

Which table applies is the caller's choice (``cost_usd(..., builtin=…)``): OpenAI and Azure
use the built-in one (Azure by the model the response names, never by the deployment name);
compatible servers (Ollama, vLLM, …) and the offline provider only what the analyst set.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError

PRICES_VARIABLE = "FOURHOSTS_PRICES"
EXPECTED_SHAPE = (
    '{"model": [input_per_1M, output_per_1M]} or [input, output, cached_input] in USD, '
    'e.g. {"llama3.1:8b": [0, 0], "gpt-4o": [2.5, 10, 1.25]}'
)


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. ``cached_input`` None: cached prompt tokens cost the input price."""

    input: float
    output: float
    cached_input: float | None = None


# Model → list price, USD per 1M tokens (input, output, cached input); see the module docstring.
PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),  # the first gpt-4o snapshot kept its launch price
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
}

# A dated snapshot ("gpt-4o-2024-08-06") is priced as its family unless listed itself. Only the
# date is stripped: "gpt-4o-audio-preview", "o3-pro" or "chatgpt-4o-latest" are other models
# with other prices, so there is no prefix matching.
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _key(model: str) -> str:
    return model.strip().lower()


def price_for(model: str | None, overrides: Mapping[str, Price] | None = None, *,
              builtin: bool = True) -> Price | None:
    """The price of ``model``: the analyst's overrides first, then (if ``builtin``) the table."""
    if not model:
        return None
    table: dict[str, Price] = dict(PRICES) if builtin else {}
    table.update({_key(k): v for k, v in (overrides or {}).items()})
    key = _key(model)
    return table.get(key) or table.get(_DATED.sub("", key))


def cost_usd(model: str | None, usage: Any, overrides: Mapping[str, Price] | None = None, *,
             builtin: bool = True) -> float | None:
    """USD for ``usage`` (prompt/completion/cached token counts) on ``model``; None if unpriced."""
    price = price_for(model, overrides, builtin=builtin)
    if price is None:
        return None
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    cached = min(prompt, int(getattr(usage, "cached_tokens", 0) or 0))
    cached_rate = price.input if price.cached_input is None else price.cached_input
    return ((prompt - cached) * price.input + cached * cached_rate + completion * price.output) / 1e6


def parse_prices(value: Any, source: str = PRICES_VARIABLE) -> dict[str, Price]:
    """Overrides from JSON text or a mapping: model → [input, output(, cached_input)] per 1M.

    A bad value is a ConfigError naming ``source`` and showing the expected shape.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source} is not valid JSON ({exc.msg}); expected {EXPECTED_SHAPE}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source} must be a JSON object; expected {EXPECTED_SHAPE}")
    out: dict[str, Price] = {}
    for model, spec in value.items():
        if isinstance(spec, Price):
            out[_key(str(model))] = spec
            continue
        numbers = spec if isinstance(spec, (list, tuple)) else None
        if (not isinstance(model, str) or not model.strip() or numbers is None
                or len(numbers) not in (2, 3)
                or not all(isinstance(n, (int, float)) and not isinstance(n, bool)
                           and math.isfinite(n) and n >= 0
                           for n in numbers)):
            raise ConfigError(
                f"{source}: bad price {spec!r} for model {model!r}: give 2 or 3 non-negative "
                f"numbers; expected {EXPECTED_SHAPE}"
            )
        out[_key(model)] = Price(*(float(n) for n in numbers))
    return out
