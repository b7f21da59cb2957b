"""Compare and blend go through the scheduler: one task per host, at most its concurrency at
once, the estimates held inside the run's or batch's budget, a host the budget cannot pay for
refused before it starts (scripted server over loopback, real store)."""

from __future__ import annotations

import threading
import time

import pytest

from fourhosts_jupyter.comparison import CompareFinished, compare, stream_compare
from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import RunError
from fourhosts_jupyter.paradigms import HOSTS
from fourhosts_jupyter.schedule import Budget, Scheduler
from fourhosts_jupyter.schedule.batch import item_estimate
from fourhosts_jupyter.testing import RecordedRequest, Reply

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


class InFlight:
    """Counts the requests the scripted server is answering at once."""

    def __init__(self) -> None:
        self.now = self.most = self.total = 0
        self.lock = threading.Lock()

    def __call__(self, req: RecordedRequest) -> Reply:
        with self.lock:
            self.now += 1
            self.total += 1
            self.most = max(self.most, self.now)
        time.sleep(0.25)  # long enough for the other hosts' requests to arrive if they may
        with self.lock:
            self.now -= 1
        return Reply.say("A view [1].", usage=(20, 5))


@pytest.fixture
def engine(openai_server, seeded_store):
    return Engine(Settings(base_url=openai_server.base_url, model="scripted-model", max_retries=0),
                  store=seeded_store, tools=False)


def _finished(events) -> object:
    return next(e.comparison for e in events if isinstance(e, CompareFinished))


def test_each_host_is_one_scheduler_task_within_its_concurrency(openai_server, engine):
    counter = InFlight()
    openai_server.respond_with(counter)
    sched = Scheduler(2)
    c = _finished(list(stream_compare(engine, QUESTION, scheduler=sched)))
    assert set(c.answers) == set(HOSTS)
    assert sched.status().done == 4
    assert counter.total == 4 and counter.most == 2  # two slots: never three hosts at once


def test_the_budget_holds_each_hosts_estimate_while_it_runs(openai_server, engine):
    counter = InFlight()
    openai_server.respond_with(counter)
    est = item_estimate(QUESTION, "scripted-model", None)
    # enough for any one host's call, not for two hosts' estimates at once: one at a time
    budget = Budget(tokens=2 * est - 1, scope="batch")
    c = compare(engine, QUESTION, budget=budget)
    assert {h: r.error for h, r in c.results.items() if not r.ok} == {}
    assert counter.total == 4 and counter.most == 1
    assert budget.used_tokens == 4 * 25  # what the calls really used, each counted once


def test_a_host_the_budget_cannot_pay_for_is_refused_before_it_starts(openai_server, engine):
    counter = InFlight()
    openai_server.respond_with(counter)
    est = item_estimate(QUESTION, "scripted-model", None)
    events = list(stream_compare(engine, QUESTION, "dolores,bernard", budget=Budget(tokens=est - 1),
                                 save=False))
    c = _finished(events)
    assert counter.total == 0
    for r in c.results.values():
        assert r.kind == "budget" and not r.ok and r.run_id == ""  # never started: no run
        assert "budget" in r.error
    with pytest.raises(RunError, match="every host failed"):
        compare(engine, QUESTION, "dolores,bernard", budget=Budget(tokens=est - 1), save=False)
