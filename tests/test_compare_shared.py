"""A comparison shares its hosts' repeated CPU work: the question is embedded once for all
hosts, and the answers are written back to memory after every host selected and answered (no
index invalidated mid-comparison), all of them, once (scripted server, real store, real model)."""

from __future__ import annotations

import asyncio
import threading

from fourhosts_jupyter.comparison import CompareFinished, HostEvent, astream_compare
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.events import AnswerReady
from fourhosts_jupyter.memory.embeddings import get_embedder
from fourhosts_jupyter.paradigms import HOSTS
from fourhosts_jupyter.testing import Reply

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


class Counted:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner, self.texts, self.lock = inner, [], threading.Lock()
        self.name, self.dim = inner.name, inner.dim

    def __getattr__(self, attr):
        return getattr(self.__dict__["inner"], attr)

    def embed(self, texts):
        with self.lock:
            self.texts.extend(texts)
        return self.inner.embed(texts)


def written(store, run_ids) -> dict[str, int]:
    with store.connect() as con:
        rows = con.execute(
            "SELECT json_extract_string(metadata, '$.kind'), count(*) FROM memories "
            "WHERE json_extract_string(metadata, '$.run_id') IN (SELECT unnest(?)) GROUP BY 1",
            [list(run_ids)]).fetchall()
    return dict(rows)


def test_the_question_is_embedded_once_and_answers_written_after_all_hosts(openai_server, seeded_store):
    openai_server.set_default(Reply.say("Lower speeds save lives [1].", first_delay=0.05))
    embedder = Counted(get_embedder())
    engine = Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                    store=seeded_store, tools=False, embedder=embedder)
    at_first_answer: dict[str, int] | None = None

    async def main():
        nonlocal at_first_answer
        async for ev in astream_compare(engine, QUESTION):
            if isinstance(ev, HostEvent) and isinstance(ev.event, AnswerReady) and at_first_answer is None:
                at_first_answer = written(seeded_store, [ev.event.answer.run_id])
            if isinstance(ev, CompareFinished):
                return ev.comparison

    c = asyncio.run(main())
    assert set(c.answers) == set(HOSTS)
    assert embedder.texts.count(QUESTION) == 1  # classify and select of four hosts: one pass
    assert at_first_answer == {}  # nothing written back while the other hosts still select
    run_ids = [r.run_id for r in c.results.values()]
    assert written(seeded_store, run_ids) == {"answer": 4, "query_context": 4}
