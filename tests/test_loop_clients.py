"""A sync twin's event loop takes its HTTP clients with it (llm/loop_clients.py): none is left
open for the garbage collector to close on a closed loop ("Event loop is closed" at exit)."""

from __future__ import annotations

import gc
import warnings

import openai

from fourhosts_jupyter.comparison import CompareFinished, stream_compare
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.llm import loop_clients
from fourhosts_jupyter.testing import Reply

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


def test_run_closes_the_clients_made_on_its_loop():
    made = []

    async def work() -> int:
        made.append(loop_clients.track(openai.AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")))
        return loop_clients.open_on_this_loop()

    assert loop_clients.run(work()) == 1
    assert made[0].is_closed()


def test_a_comparison_leaves_no_connection_open_behind_it(openai_server, seeded_store, monkeypatch):
    # every host's run goes on after its model loop: the evaluation's judge asks the model too
    monkeypatch.setenv("FOURHOSTS_EVALUATION", "1")
    openai_server.respond_with(lambda req: Reply.say("Lower speeds save lives [1]."))
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=seeded_store, tools=False)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        done = [e for e in stream_compare(engine, QUESTION) if isinstance(e, CompareFinished)]
        gc.collect()
    assert len(done[0].comparison.answers) == 4
    assert len(openai_server.requests) > 4  # more than one call per host: some after the model loop
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []
