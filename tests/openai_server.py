"""Pytest fixtures around the scripted loopback Chat Completions server.

The server itself lives in ``fourhosts_jupyter.testing`` (so notebooks and analysts can use it
too); ``tests/conftest.py`` imports these fixtures.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from fourhosts_jupyter.testing import Call, Quirks, RecordedRequest, Reply, ScriptedServer

__all__ = ["Call", "Quirks", "RecordedRequest", "Reply", "ScriptedServer", "openai_server"]


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
