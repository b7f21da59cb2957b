"""Compare batches: every question answered by each host, one row per question per host, in
question then host order; resumable like any batch (scripted server, real store)."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
from openai_server import Reply

from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.schedule.batch import batch
from fourhosts_jupyter.schedule.batch_store import RESULT_COLUMNS, batch_rows
from fourhosts_jupyter.testing import RecordedRequest
from test_batch import _env, engine_for, questions, research_shell

TAG = re.compile(r"city Q(\d+)")


def asked(req: RecordedRequest) -> tuple[int, str]:
    """(question number, host) of a request: the question's tag, the host's system prompt."""
    user = [m for m in req.messages if m.get("role") == "user"][-1]
    host = re.search(r"the (DOLORES|TEDDY|BERNARD|MAEVE) paradigm", req.messages[0]["content"]).group(1)
    return int(TAG.search(str(user["content"])).group(1)), host.lower()


@pytest.fixture
def answering(openai_server):
    openai_server.set_default(Reply.say("Lower speeds save lives [1].", usage=(1_000, 50)))
    return openai_server


def test_every_host_answers_every_question_one_row_each(answering, seeded_any):
    df = batch(questions(3), engine=engine_for(answering, seeded_any), concurrency=4, progress=False,
               compare="dolores,bernard")
    assert list(df.columns) == list(RESULT_COLUMNS) and df.attrs["compare"] == ["dolores", "bernard"]
    assert df.attrs["state"] == "done" and list(df["status"]) == ["ok"] * 6
    assert list(df["question"]) == [q for q in questions(3) for _ in range(2)]
    assert list(df["host"]) == ["dolores", "bernard"] * 3 and df["run_id"].is_unique
    assert sorted(asked(r) for r in answering.chat_requests) == [
        (i, h) for i in range(3) for h in ("bernard", "dolores")]
    wide = df.pivot(index="question", columns="host", values="answer")
    assert wide.shape == (3, 2) and (wide == "Lower speeds save lives [1].").all().all()
    [info] = batch_rows(seeded_any).list()
    assert (info.total, info.done, info.options["compare"]) == (6, 6, ["dolores", "bernard"])


def test_a_stopped_compare_batch_resumes_with_its_hosts(answering, seeded_any):
    engine = engine_for(answering, seeded_any)
    first = batch(questions(2), engine=engine, concurrency=1, budget_tokens=5_000, progress=False,
                  compare=True)
    order = ["dolores", "teddy", "bernard", "maeve"] * 2
    assert first.attrs["state"] == "stopped"
    ok = first[first["status"] == "ok"]
    assert list(ok["host"]) == [order[i] for i in ok.index]  # each item answered by its own host
    done = {asked(r) for r in answering.chat_requests}
    assert 1 <= len(done) < 8
    answering.clear()
    again = batch(resume=first.attrs["batch_id"], engine=engine, budget_tokens=100_000, progress=False)
    assert again.attrs["state"] == "done" and list(again["status"]) == ["ok"] * 8
    assert list(again["host"]) == order
    resumed = {asked(r) for r in answering.chat_requests}
    assert resumed.isdisjoint(done) and len(resumed | done) == 8  # nothing answered twice


def test_compare_and_a_forced_host_do_not_mix(answering, seeded_any):
    with pytest.raises(ConfigError, match="--compare HOSTS or --paradigm HOST, not both"):
        batch(questions(1), engine=engine_for(answering, seeded_any), progress=False,
              compare=True, paradigm="teddy")
    with pytest.raises(ConfigError, match="at least two hosts"):
        batch(questions(1), engine=engine_for(answering, seeded_any), progress=False, compare="teddy")


def test_cli_batch_compare_writes_a_row_per_question_per_host(answering, tmp_path):
    pd.DataFrame({"question": questions(2)}).to_csv(tmp_path / "q.csv", index=False)
    out = subprocess.run(
        [sys.executable, "-m", "fourhosts_jupyter.cli", "batch", "q.csv", "--column", "question",
         "--compare", "teddy,maeve", "--out", "r.jsonl", "--base-url", answering.base_url,
         "--model", "scripted-model"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, env=_env(tmp_path))
    assert out.returncode == 0, out.stderr
    res = pd.read_json(tmp_path / "r.jsonl", lines=True)
    assert list(res["host"]) == ["teddy", "maeve"] * 2 and list(res["status"]) == ["ok"] * 4
    assert list(res["question"]) == [q for q in questions(2) for _ in range(2)]


def test_research_batch_magic_compare(answering, tmp_path, monkeypatch):
    from IPython.utils.capture import capture_output

    with research_shell(answering, tmp_path, monkeypatch) as ip:
        src = tmp_path / "q.csv"
        pd.DataFrame({"question": questions(2)}).to_csv(src, index=False)
        with capture_output():
            df = ip.run_line_magic("research", f"batch {src} --column question --no-progress --compare maeve,dolores")
        assert list(df["host"]) == ["maeve", "dolores"] * 2 and list(df["status"]) == ["ok"] * 4
