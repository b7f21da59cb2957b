"""The tool registry: schemas from plain functions, validation, per-host sets, built-ins."""

from __future__ import annotations

import asyncio
from typing import Literal, Optional

import pydantic
import pytest
from openai.types.chat import ChatCompletionToolParam

import fourhosts_jupyter as fh
from fourhosts_jupyter.errors import ConfigError, ToolArgumentsError, ToolError
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.paradigms import PROFILES, HostParadigm
from fourhosts_jupyter.tools import ParadigmAwareToolContext, ToolRegistry, default_registry, tool
from fourhosts_jupyter.tools.builtins import forget, register_builtins, remember, search_memory
from fourhosts_jupyter.tools.registry import Tool, parse_docstring

TOOL_PARAM = pydantic.TypeAdapter(ChatCompletionToolParam)


def city_population(city: str, year: int = 2024, unit: Literal["people", "thousands"] = "people",
                    ctx: Optional[ParadigmAwareToolContext] = None) -> dict:
    """Population of a city in a given year.

    Args:
        city: the city's name
        year: the census year
    """
    return {"city": city, "year": year, "unit": unit, "host": ctx.host if ctx else None}


def test_schema_from_signature_hints_and_docstring():
    t = Tool.from_function(city_population)
    param = t.param()
    TOOL_PARAM.validate_python(param)  # the SDK's own type
    fn = param["function"]
    assert fn["name"] == "city_population"
    assert fn["description"] == "Population of a city in a given year."
    props = fn["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": "the city's name"}
    assert props["year"] == {"type": "integer", "default": 2024, "description": "the census year"}
    assert props["unit"]["enum"] == ["people", "thousands"]
    assert fn["parameters"]["required"] == ["city"]
    assert "ctx" not in props  # the context is injected, never offered
    assert t.context_param == "ctx"
    assert fn["parameters"]["additionalProperties"] is False


def test_validation_converts_and_reports_every_problem():
    t = Tool.from_function(city_population)
    assert t.validate({"city": "Oslo", "year": "2020"}) == {"city": "Oslo", "year": 2020, "unit": "people"}
    with pytest.raises(ToolArgumentsError) as info:
        t.validate({"year": "soon", "colour": "red"})
    message = str(info.value)
    assert "city: Field required" in message
    assert "year:" in message and "colour: Extra inputs are not permitted" in message
    assert "Expected parameters: city, year, unit" in message


def test_register_as_decorator_with_options_or_call_returns_the_function():
    reg = ToolRegistry()

    @reg.register
    def plain(x: int) -> int:
        """Plain."""
        return x

    @reg.register(name="renamed", timeout=3, description="Custom words.")
    async def coro(q: str) -> str:
        return q

    def called(a: float) -> float:
        return a

    assert reg.register(called) is called
    assert plain(2) == 2  # still the analyst's function
    assert reg.names() == ["called", "plain", "renamed"]
    assert reg.get("renamed").is_async and reg.get("renamed").timeout == 3
    assert reg.get("renamed").param()["function"]["description"] == "Custom words."
    assert not reg.get("plain").is_async


def test_bad_tools_are_refused_with_a_clear_message():
    reg = ToolRegistry()
    with pytest.raises(ConfigError, match="pass name="):
        reg.register(lambda x: x)
    with pytest.raises(ConfigError, match="not a function"):
        reg.register(42)


def test_docstring_styles():
    assert parse_docstring("Sum.\n\n:param a: first\n:param int b: second\n:returns: x") == (
        "Sum.", {"a": "first", "b": "second"})
    assert parse_docstring("Sum.\n\nParameters\n----------\na : int\n    first\nb : float\n    second\n") == (
        "Sum.", {"a": "first", "b": "second"})
    assert parse_docstring("One\nparagraph.\n\nArgs:\n    a (int): first\n        more\n")[1] == {"a": "first more"}


def test_per_host_tool_sets_really_filter():
    from fourhosts_jupyter.tools.host_tools import host_tools

    reg = ToolRegistry()
    register_builtins(reg)

    def run_python(code: str) -> str:
        """Run code."""
        return code

    reg.register(run_python, builtin=True)  # a built-in listed for Dolores but not for Teddy
    reg.register(city_population)  # the analyst's own: always offered
    names = {h: {t.name for t in reg.for_host(h)} for h in HostParadigm}
    assert "run_python" in names[HostParadigm.DOLORES] and "run_python" not in names[HostParadigm.TEDDY]
    for h in HostParadigm:
        assert "city_population" in names[h]
        # the profile's names, with the real web tools standing for the original's (host_tools.py)
        assert names[h] <= set(host_tools(h)) | {"city_population"}
    # names a profile lists but nobody registered are simply not offered
    assert "advanced_web_search" in PROFILES[HostParadigm.DOLORES].tools
    assert "advanced_web_search" not in names[HostParadigm.DOLORES]


def test_default_registry_is_process_wide_and_fh_tool_registers_into_it():
    assert {"search_memory", "remember", "forget"} <= set(default_registry().names())

    @fh.tool
    def notebook_helper(topic: str) -> str:
        """Defined in a notebook cell."""
        return topic

    try:
        assert default_registry().get("notebook_helper").fn is notebook_helper
        assert fh.tool is tool
    finally:
        default_registry().unregister("notebook_helper")


# -- built-ins over a real store ----------------------------------------------------------------


@pytest.fixture
def ctx(store):
    return ParadigmAwareToolContext(paradigm=HostParadigm.BERNARD, store=store, embedder=HashingEmbedder(),
                                    run_id="r_test", call_id="c1")


def test_remember_search_and_forget_round_trip(ctx, store):
    saved = remember("Speed cameras cut fatal crashes by about 20 percent in urban corridors.", ctx,
                     title="speed cameras")
    assert saved["saved"] and saved["id"]
    again = remember("Speed cameras cut fatal crashes by about 20 percent in urban corridors.", ctx)
    assert again == {"saved": False, "reason": "an identical note is already stored"}
    found = search_memory("speed cameras fatal crashes", ctx, k=3)
    assert found and found[0]["id"] == saved["id"] and found[0]["namespace"] == "bernard"
    assert forget(saved["id"], ctx) == {"forgotten": True, "id": saved["id"]}
    assert all(f["id"] != saved["id"] for f in search_memory("speed cameras fatal crashes", ctx, k=3))
    assert forget(saved["id"], ctx)["forgotten"] is False


def test_memory_tools_need_a_store():
    with pytest.raises(ToolError, match="no memory store"):
        search_memory("x", ParadigmAwareToolContext())


def test_builtins_validate_through_their_schema(ctx):
    t = Tool.from_function(search_memory)
    assert t.context_param == "ctx"
    assert set(t.param()["function"]["parameters"]["properties"]) == {"query", "k"}
    kwargs = t.validate({"query": "q", "k": "2"})
    assert asyncio.run(asyncio.to_thread(t.fn, **kwargs, ctx=ctx)) == []  # empty store, no error
