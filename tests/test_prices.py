"""Run cost from list prices: the table, the overrides, None-vs-$0, and a run through the real client."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from openai_server import Reply

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.events import AnswerReady, RunFailed, Usage
from fourhosts_jupyter.llm.openai_chat import OpenAIChatProvider, _usage
from fourhosts_jupyter.llm.prices import PRICES, Price, cost_usd, parse_prices, price_for
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.render import footer_text
from fourhosts_jupyter.tools import ToolRegistry
from fourhosts_jupyter.tools.builtins import register_builtins

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"
USAGE = Usage(prompt_tokens=1200, completion_tokens=300, total_tokens=1500)


# The cost of USAGE (1,200 prompt + 300 completion tokens) at each model's published list price
# (USD per 1M tokens, input / output), worked out by hand here rather than recomputed from the
# table with a formula of the test's own: a wrong row or a wrong formula both fail.
LIST_COST = {
    "gpt-4o": 0.006,              # 2.50 / 10.00: 0.0030 + 0.0030
    "gpt-4o-2024-05-13": 0.0105,  # 5.00 / 15.00: 0.0060 + 0.0045
    "gpt-4o-mini": 0.00036,       # 0.15 / 0.60: 0.00018 + 0.00018
    "gpt-4.1": 0.0048,            # 2.00 / 8.00: 0.0024 + 0.0024
    "gpt-4.1-mini": 0.00096,      # 0.40 / 1.60
    "gpt-4.1-nano": 0.00024,      # 0.10 / 0.40
    "o3": 0.0048,                 # 2.00 / 8.00
    "o3-mini": 0.00264,           # 1.10 / 4.40
    "o4-mini": 0.00264,           # 1.10 / 4.40
    "gpt-5": 0.0045,              # 1.25 / 10.00: 0.0015 + 0.0030
    "gpt-5-mini": 0.0009,         # 0.25 / 2.00
    "gpt-5-nano": 0.00018,        # 0.05 / 0.40
}


def test_every_row_of_the_table_has_a_hand_worked_cost_here():
    assert set(PRICES) == set(LIST_COST)


# -- the table ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(PRICES))
def test_every_listed_model_is_priced_from_its_row(model):
    assert cost_usd(model, USAGE) == pytest.approx(LIST_COST[model], rel=1e-9)


@pytest.mark.parametrize(("snapshot", "family"), [
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("GPT-4.1-2025-04-14", "gpt-4.1"),
    (" o3-mini-2025-01-31 ", "o3-mini"),
    ("gpt-5-nano-2025-08-07", "gpt-5-nano"),
])
def test_a_dated_snapshot_is_priced_as_its_family(snapshot, family):
    assert price_for(snapshot) == PRICES[family]
    assert cost_usd(snapshot, USAGE) == pytest.approx(LIST_COST[family], rel=1e-9)


def test_a_snapshot_with_a_price_of_its_own_is_not_priced_as_its_family():
    assert price_for("gpt-4o-2024-05-13") == PRICES["gpt-4o-2024-05-13"] != PRICES["gpt-4o"]


def test_cached_prompt_tokens_cost_the_cached_rate():
    usage = Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100, cached_tokens=400)
    price = PRICES["gpt-4.1"]
    assert price.cached_input is not None and price.cached_input < price.input
    # 600 × 2.00 + 400 × 0.50 (cached) + 100 × 8.00 = 2,200 per 1M
    assert cost_usd("gpt-4.1", usage) == pytest.approx(0.0022, rel=1e-9)
    assert cost_usd("gpt-4.1", usage) < cost_usd("gpt-4.1", Usage(1000, 100, 1100))


def test_the_provider_reads_cached_tokens_from_the_usage_chunk():
    raw = SimpleNamespace(prompt_tokens=50, completion_tokens=5, total_tokens=55,
                          prompt_tokens_details=SimpleNamespace(cached_tokens=32))
    assert _usage(raw) == Usage(50, 5, 55, None, 32)
    assert _usage(SimpleNamespace(prompt_tokens=3, completion_tokens=2)).cached_tokens == 0


@pytest.mark.parametrize("model", [
    "llama3.1:8b", "gpt-4o-audio-preview", "o3-pro", "chatgpt-4o-latest", "my-gpt4o-deployment", "", None,
])
def test_an_unknown_model_has_no_price_never_a_guess(model):
    assert price_for(model) is None
    assert cost_usd(model, USAGE) is None


def test_without_the_built_in_table_only_the_analysts_prices_count():
    assert cost_usd("gpt-4o", USAGE, builtin=False) is None
    mine = {"gpt-4o": Price(1.0, 2.0)}
    assert cost_usd("gpt-4o", USAGE, mine, builtin=False) == pytest.approx(0.0018, rel=1e-9)


# -- None is not $0 ---------------------------------------------------------------------------------


def test_usage_adds_costs_and_an_unpriced_part_makes_the_total_unknown():
    a = Usage(100, 10, 110, 0.25)
    b = Usage(200, 20, 220, 0.5)
    assert (a + b).cost_usd == pytest.approx(0.75) and (a + b).total_tokens == 330
    assert (a + Usage(5, 5, 10)).cost_usd is None  # tokens without a price: total unknown
    assert (Usage() + a).cost_usd == 0.25 and (a + Usage()).cost_usd == 0.25  # empty = identity
    assert (Usage() + Usage()).cost_usd is None
    assert (Usage(1, 0, 1, 0.0) + Usage(1, 0, 1, 0.0)).cost_usd == 0.0  # a known $0 stays known


def test_footer_shows_a_known_cost_and_nothing_for_an_unknown_one():
    priced = Usage(1200, 300, 1500, cost_usd("gpt-4o", USAGE))
    out = footer_text(provider="openai", model="gpt-4o", usage=priced)
    assert f"${priced.cost_usd:.4f}" in out and "1,500 tokens" in out
    unpriced = footer_text(provider="compatible", model="llama3.1:8b", usage=Usage(1200, 300, 1500))
    assert "1,500 tokens" in unpriced and "$" not in unpriced
    assert "<$0.0001" in footer_text(usage=Usage(10, 5, 15, 0.000004))
    assert "$0.0000" in footer_text(usage=Usage(10, 5, 15, 0.0))  # a configured free model


# -- overrides ----------------------------------------------------------------------------------------


def test_override_from_the_environment(monkeypatch):
    monkeypatch.setenv("FOURHOSTS_PRICES", '{"llama3.1:8b": [0.1, 0.2], "GPT-4o": [1, 2, 0.5]}')
    prices = Settings.from_env().prices
    assert prices == {"llama3.1:8b": Price(0.1, 0.2), "gpt-4o": Price(1.0, 2.0, 0.5)}
    assert cost_usd("llama3.1:8b", USAGE, prices) == pytest.approx(0.00018, rel=1e-9)
    # an override replaces the list price, snapshots included
    assert cost_usd("gpt-4o-2024-08-06", USAGE, prices) == pytest.approx(0.0018, rel=1e-9)


def test_override_through_settings_merges_over_the_environment(monkeypatch):
    monkeypatch.setenv("FOURHOSTS_PRICES", '{"a": [1, 1], "b": [2, 2]}')
    s = Settings.from_env(prices={"b": [3, 4], "c": (5, 6, 1)})
    assert s.prices == {"a": Price(1, 1), "b": Price(3, 4), "c": Price(5, 6, 1)}
    assert Settings.from_env(prices='{"d": [7, 8]}').prices["d"] == Price(7, 8)  # JSON text too
    assert Settings(prices={"x": [0, 0]}).prices == {"x": Price(0, 0)}
    assert cost_usd("x", USAGE, Settings(prices={"x": [0, 0]}).prices) == 0.0  # known free, not None


@pytest.mark.parametrize(("raw", "why"), [
    ("{not json", "not valid JSON"),
    ('["gpt-4o", 1, 2]', "must be a JSON object"),
    ('{"m": [1]}', "bad price"),
    ('{"m": [1, 2, 3, 4]}', "bad price"),
    ('{"m": [-1, 2]}', "bad price"),
    ('{"m": {"input": 1}}', "bad price"),
    ('{"m": ["1", 2]}', "bad price"),
])
def test_a_bad_override_is_a_config_error_naming_the_variable_and_the_shape(monkeypatch, raw, why):
    monkeypatch.setenv("FOURHOSTS_PRICES", raw)
    with pytest.raises(ConfigError) as err:
        Settings.from_env()
    message = str(err.value)
    assert "FOURHOSTS_PRICES" in message and why in message
    assert '{"model": [input_per_1M, output_per_1M]}' in message


def test_a_bad_settings_price_is_a_config_error_too():
    with pytest.raises(ConfigError, match=r"Settings\.prices.*input_per_1M"):
        Settings(prices={"m": "cheap"})
    with pytest.raises(ConfigError, match=r"^prices: bad price"):
        Settings.from_env(prices={"m": [1, None]})
    assert parse_prices("") == {} and parse_prices(None) == {}


# -- through the real client ---------------------------------------------------------------------------


def run(openai_server, store, provider, *replies: Reply, tools=False):
    openai_server.script(*replies)
    engine = Engine(Settings(max_retries=0), store=store, embedder=HashingEmbedder(), provider=provider,
                    tools=tools)
    events = list(engine.stream(QUESTION, paradigm="bernard"))
    ready = [e for e in events if isinstance(e, AnswerReady)]
    assert ready, [e for e in events if isinstance(e, RunFailed)]
    answer = ready[0].answer
    return answer, store.get_run(answer.run_id)


def openai_kind(server, model: str = "gpt-4o-mini", **kw) -> OpenAIChatProvider:
    # kind "openai" pointed at the loopback server: list prices apply as they would on api.openai.com
    return OpenAIChatProvider("openai", model=model, api_key="test-key", base_url=server.base_url,
                              max_retries=0, **kw)


def test_an_openai_run_carries_its_cost_into_the_answer_the_store_and_the_footer(openai_server, store):
    answer, row = run(openai_server, store, openai_kind(openai_server), Reply.say("Cut speeds [1].", usage=(1200, 300)))
    cost = LIST_COST["gpt-4o-mini"]
    assert answer.usage.total_tokens == 1500
    assert answer.usage.cost_usd == pytest.approx(cost)
    assert row["cost_usd"] == pytest.approx(cost)
    assert f"${cost:.4f}" in footer_text(provider=answer.provider, model=answer.model, usage=answer.usage)


def test_the_cost_of_tool_rounds_adds_up(openai_server, store):
    reg = ToolRegistry()
    register_builtins(reg)
    answer, _ = run(openai_server, store, openai_kind(openai_server, "gpt-4.1"),
                    Reply.call("search_memory", {"query": "speed"}, usage=(100, 10)),
                    Reply.say("ok", usage=(200, 20)), tools=reg)
    assert answer.usage.prompt_tokens == 300
    # (100 × 2.00 + 10 × 8.00) + (200 × 2.00 + 20 × 8.00) = 280 + 560 per 1M
    assert answer.usage.cost_usd == pytest.approx(0.00084, rel=1e-9)


def test_a_compatible_server_has_no_price_even_for_a_listed_model_name(openai_server, store):
    provider = OpenAIChatProvider("compatible", model="gpt-4o-mini", base_url=openai_server.base_url, max_retries=0)
    answer, row = run(openai_server, store, provider, Reply.say("Cut speeds [1].", usage=(1200, 300)))
    assert answer.usage.total_tokens == 1500 and answer.usage.cost_usd is None
    assert row["cost_usd"] is None  # NULL in DuckDB: unknown, not $0
    assert "$" not in footer_text(provider=answer.provider, model=answer.model, usage=answer.usage)


def test_a_compatible_server_is_priced_when_the_analyst_says_so(openai_server, store, monkeypatch):
    settings = Settings(prices={"llama3.1:8b": [0.2, 0.6]})
    provider = OpenAIChatProvider("compatible", model="llama3.1:8b", base_url=openai_server.base_url,
                                  max_retries=0, prices=settings.prices)
    answer, row = run(openai_server, store, provider, Reply.say("Cut speeds [1].", usage=(1000, 100)))
    assert answer.usage.cost_usd == pytest.approx(0.00026, rel=1e-9)  # 1000 × 0.2 + 100 × 0.6
    # without an explicit table the provider reads FOURHOSTS_PRICES
    monkeypatch.setenv("FOURHOSTS_PRICES", '{"llama3.1:8b": [1, 1]}')
    provider = OpenAIChatProvider("compatible", model="llama3.1:8b", base_url=openai_server.base_url, max_retries=0)
    answer, _ = run(openai_server, store, provider, Reply.say("Cut speeds [1].", usage=(1000, 100)))
    assert answer.usage.cost_usd == pytest.approx(0.0011, rel=1e-9)


def test_an_azure_deployment_name_is_not_a_model_name(openai_server, store):
    def azure(**kw) -> OpenAIChatProvider:
        return OpenAIChatProvider("azure", model="prod-chat", api_key="k", azure_endpoint=openai_server.azure_endpoint,
                                  max_retries=0, **kw)

    answer, _ = run(openai_server, store, azure(), Reply.say("Cut speeds [1].", usage=(1000, 100)))
    assert answer.usage.cost_usd is None
    answer, _ = run(openai_server, store, azure(prices={"prod-chat": [2.5, 10]}),
                    Reply.say("Cut speeds [1].", usage=(1000, 100)))
    assert answer.usage.cost_usd == pytest.approx(0.0035, rel=1e-9)  # 1000 × 2.5 + 100 × 10

