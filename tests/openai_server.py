"""Pytest fixtures around the scripted loopback server, and what the provider tests share.

The server itself lives in ``fourhosts_jupyter.testing`` (so notebooks and analysts can use it
too); ``tests/conftest.py`` imports these fixtures.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest

from fourhosts_jupyter.errors import ProviderError
from fourhosts_jupyter.llm.base import ModelRequest, ProviderText, ProviderToolCallDelta
from fourhosts_jupyter.testing import Call, Quirks, RecordedRequest, Reply, ScriptedServer

__all__ = ["MESSAGES", "TOOL", "Call", "Quirks", "RecordedRequest", "Reply", "ScriptedServer", "Sleeps",
           "assembled_calls", "collect", "collect_until_error", "openai_server", "text_of"]

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello?"}]
TOOL = {"type": "function", "function": {"name": "lookup", "description": "look",
                                         "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
def openai_server() -> Iterator[ScriptedServer]:
    """A fresh scripted server on 127.0.0.1 for one test."""
    from fourhosts_jupyter.llm import openai_chat

    # What providers learned about earlier servers is kept per address for the process; a new
    # server may get a port an earlier one had, and must not inherit it.
    openai_chat._REFUSED.clear()
    openai_chat._UNSTREAMED_TOOLS.clear()
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


class Sleeps:
    """Records the backoff a provider asks for instead of sleeping it."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


async def _drain(provider: Any, request: ModelRequest | None, into: list) -> None:
    try:
        async for ev in provider.stream(request or ModelRequest(messages=MESSAGES)):
            into.append(ev)
    finally:
        await provider.aclose()


def collect(provider: Any, request: ModelRequest | None = None) -> list:
    """Every event of one provider turn (on a fresh event loop)."""
    out: list = []
    asyncio.run(_drain(provider, request, out))
    return out


def collect_until_error(provider: Any, request: ModelRequest | None = None) -> tuple[list, ProviderError]:
    """The events of a turn that fails, and its error (which must be a ProviderError)."""
    seen: list = []
    with pytest.raises(ProviderError) as info:
        asyncio.run(_drain(provider, request, seen))
    return seen, info.value


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, ProviderText))


def assembled_calls(events: list) -> dict[int, dict[str, str]]:
    """The turn's tool calls as the loop joins them: id, name and arguments per index."""
    calls: dict[int, dict[str, str]] = {}
    for e in events:
        if isinstance(e, ProviderToolCallDelta):
            c = calls.setdefault(e.index, {"id": "", "name": "", "arguments": ""})
            c["id"] = c["id"] or (e.id or "")
            c["name"] = c["name"] or (e.name or "")
            c["arguments"] += e.arguments
    return calls
