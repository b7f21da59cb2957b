"""Batch research against the loopback server: results, durable rows, a budget stop and its
resume, the dead-letter path, file formats in and out, bad input, and a batch killed with
SIGKILL mid-way and resumed by a new process (nothing answered twice)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pandas as pd
import pytest
from openai_server import Reply

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.store import Store
from fourhosts_jupyter.schedule.batch import batch, list_batches
from fourhosts_jupyter.schedule.batch_io import questions_from, read_table, write_table
from fourhosts_jupyter.schedule.batch_store import RESULT_COLUMNS, BatchStore, batch_rows
from fourhosts_jupyter.testing import RecordedRequest, ScriptedServer
from fourhosts_jupyter.tools import ToolRegistry

TAG = re.compile(r"\bQ(\d\d)\b")


def questions(n: int) -> list[str]:
    return [f"How should city Q{i:02d} cut traffic deaths in half?" for i in range(n)]


def asked(req: RecordedRequest) -> int:
    """Which question a request was for (its tag in the last user message)."""
    user = [m for m in req.messages if m.get("role") == "user"][-1]
    return int(TAG.search(str(user["content"])).group(1))


def engine_for(server: ScriptedServer, store, **settings) -> Engine:  # noqa: ANN001 - either store
    s = Settings(base_url=server.base_url, model="scripted-model", max_retries=0, **settings)
    return Engine(s, store=store, embedder=HashingEmbedder(), tools=ToolRegistry())


async def interrupt_batch(server: ScriptedServer, engine: Engine, after: int, **options) -> None:  # noqa: ANN003
    """A 6-question batch at concurrency 2, its task cancelled (as Ctrl-C does) once the model
    has been asked ``after`` times; the cancel reaches the caller."""
    import asyncio

    from fourhosts_jupyter.schedule.batch import abatch

    task = asyncio.ensure_future(abatch(questions(6), engine=engine, concurrency=2, progress=False,
                                        **options))
    while len(server.chat_requests) < after:
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def answering(openai_server):
    openai_server.set_default(Reply.say("Lower speeds save lives [1].", usage=(1_000, 50)))
    return openai_server


def test_a_batch_answers_every_question_and_returns_the_result_frame(answering, seeded_any):
    df = batch(questions(5), engine=engine_for(answering, seeded_any), concurrency=3, progress=False,
               paradigm="bernard")
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert df.attrs["state"] == "done" and list(df["status"]) == ["ok"] * 5
    assert list(df["question"]) == questions(5)
    assert set(df["host"]) == {"bernard"} and df["run_id"].is_unique
    assert all(set(p) == {"dolores", "teddy", "bernard", "maeve"} for p in df["probabilities"])
    assert list(df["tokens"]) == [1_050] * 5 and (df["seconds"] > 0).all()
    assert all(s and s[0]["n"] == 1 for s in df["sources"])
    assert sorted(asked(r) for r in answering.chat_requests) == list(range(5))
    runs = seeded_any.runs().set_index("id")
    assert set(df["run_id"]) <= set(runs.index) and set(runs.loc[list(df["run_id"]), "status"]) == {"ok"}
    [info] = batch_rows(seeded_any).list()
    assert (info.state, info.done, info.failed, info.left, info.source) == ("done", 5, 0, 0, "list")


def test_a_dataframe_and_a_column(answering, seeded_any):
    frame = pd.DataFrame({"id": [1, 2], "q": questions(2)})
    df = batch(frame, column="q", engine=engine_for(answering, seeded_any), progress=False)
    assert list(df["question"]) == questions(2) and df.attrs["state"] == "done"
    assert batch_rows(seeded_any).list()[0].source == "dataframe"


def test_a_batch_stopped_by_its_budget_resumes_without_redoing_what_finished(answering, seeded_any):
    engine = engine_for(answering, seeded_any)
    # each question's first call is estimated at ≥ 2,000 tokens (its output cap) and uses 1,050
    first = batch(questions(6), engine=engine, concurrency=1, budget_tokens=5_000, progress=False,
                  paradigm="bernard")
    assert first.attrs["state"] == "stopped" and "batch budget" in first.attrs["note"]
    done = set(first.index[first["status"] == "ok"])
    assert 1 <= len(done) < 6
    assert first["tokens"].sum() <= 5_000  # never past the budget
    left = first[first["status"] == "pending"]
    assert left["error"].str.contains("refused before it ran").all()
    assert sorted(asked(r) for r in answering.chat_requests) == sorted(done)  # refused: never sent
    bid = first.attrs["batch_id"]
    assert batch_rows(seeded_any).info(bid).state == "stopped"

    answering.clear()
    again = batch(resume=bid, engine=engine, budget_tokens=50_000, progress=False)
    assert again.attrs["state"] == "done" and list(again["status"]) == ["ok"] * 6
    assert sorted(asked(r) for r in answering.chat_requests) == sorted(set(range(6)) - done)
    assert list(again.loc[sorted(done), "run_id"]) == list(first.loc[sorted(done), "run_id"])


def test_failures_go_to_the_dead_letter_table_and_retry_failed_runs_them_again(openai_server, seeded_any):
    broken = {1, 3}

    def respond(req: RecordedRequest) -> Reply:
        if asked(req) in broken:
            return Reply.fail(400, "the request was malformed")  # not retryable
        return Reply.say("Lower speeds save lives [1].", usage=(900, 40))

    openai_server.respond_with(respond)
    engine = engine_for(openai_server, seeded_any)
    first = batch(questions(4), engine=engine, concurrency=2, progress=False, paradigm="teddy")
    assert first.attrs["state"] == "failed"
    assert list(first["status"]) == ["ok", "failed", "ok", "failed"]
    assert first.loc[1, "error"] and "malformed" in first.loc[1, "error"]
    rows = batch_rows(seeded_any)
    dead = rows.dead_letters(first.attrs["batch_id"])
    assert list(dead["idx"]) == [1, 3] and (dead["error_kind"] == "provider").all()
    assert dead["run_id"].notna().all()

    # a resume without --retry-failed has nothing left to do
    openai_server.clear()
    same = batch(resume=first.attrs["batch_id"], engine=engine, progress=False)
    assert openai_server.chat_requests == [] and same.attrs["state"] == "failed"

    broken.clear()
    fixed = batch(resume=first.attrs["batch_id"], engine=engine, retry_failed=True, progress=False)
    assert fixed.attrs["state"] == "done" and list(fixed["status"]) == ["ok"] * 4
    assert sorted(asked(r) for r in openai_server.chat_requests) == [1, 3]
    assert rows.dead_letters(first.attrs["batch_id"]).empty


@pytest.mark.parametrize("ext", ["csv", "parquet", "jsonl"])
def test_questions_in_and_results_out_in_each_format(tmp_path, ext):
    frame = pd.DataFrame({"question": questions(3), "n": [1, 2, 3]})
    src = tmp_path / f"in.{ext}"
    {"csv": lambda p: frame.to_csv(p, index=False), "parquet": lambda p: frame.to_parquet(p),
     "jsonl": lambda p: frame.to_json(p, orient="records", lines=True)}[ext](src)
    assert questions_from(read_table(src), "question", source=str(src)) == questions(3)

    result = pd.DataFrame({"question": questions(2), "host": ["bernard", None],
                           "probabilities": [{"bernard": 0.75, "maeve": 0.25}, None],
                           "answer": ["A [1].", ""], "sources": [[{"n": 1, "title": "t", "origin": "o"}], None],
                           "tokens": [1_050, 0], "cost": [0.001, None], "seconds": [0.5, 0.1],
                           "status": ["ok", "failed"], "error": [None, "boom"], "run_id": ["r_1", "r_2"]})
    out = tmp_path / f"out.{ext}"
    write_table(result, out)
    back = read_table(out)
    assert list(back.columns) == list(result.columns) and list(back["status"]) == ["ok", "failed"]
    probs = back.loc[0, "probabilities"]
    if ext == "jsonl":  # nested cells stay JSON objects
        assert probs == {"bernard": 0.75, "maeve": 0.25}
    else:  # JSON text in a CSV or Parquet cell
        assert json.loads(probs) == {"bernard": 0.75, "maeve": 0.25}
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "q.xlsx").write_text("x"), "unknown input file type ('.xlsx')"),
    (lambda d: (d / "q.csv").write_text("question,other\nHow?,1\n"), "has no column 'title'"),
    (lambda d: (d / "q.csv").write_text("question\nHow?\n\n\"  \"\n"), "is empty"),
], ids=["file-type", "missing-column", "empty-question"])
def test_bad_input_is_one_clear_line_before_anything_runs(tmp_path, make, message):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(ConfigError, match=re.escape(message)):
        questions_from(read_table(path), "title" if "column" in message else "question", source=str(path))


# -- the command line ---------------------------------------------------------------------------


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["FOURHOSTS_HOME"] = str(tmp_path / "home")
    env["FOURHOSTS_EMBEDDER"] = "hashing"
    return env


def _fourhosts(tmp_path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env(tmp_path))


@pytest.mark.parametrize("args, message", [
    (["q.csv", "--column", "nope"], "has no column 'nope'"),
    (["q.txt", "--column", "question"], "unknown input file type ('.txt')"),
    (["q.csv", "--column", "question", "--out", "r.xlsx"], "unknown output file type ('.xlsx')"),
    (["q.csv", "--column", "question", "--compare", "dolores"], "compare needs at least two hosts"),
    (["--resume", "b_nope"], "no batch 'b_nope'"),
], ids=["missing-column", "input-type", "output-type", "compare", "unknown-batch"])
def test_cli_bad_input_exits_non_zero_with_one_line(tmp_path, args, message):
    pd.DataFrame({"question": questions(2)}).to_csv(tmp_path / "q.csv", index=False)
    (tmp_path / "q.txt").write_text("How?\n")
    out = subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", "batch", *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_cli_batch_writes_parquet_and_lists_batches_as_json(answering, tmp_path):
    src = tmp_path / "q.jsonl"
    pd.DataFrame({"question": questions(3)}).to_json(src, orient="records", lines=True)
    out = _fourhosts(tmp_path, "batch", str(src), "--column", "question", "--out", str(tmp_path / "r.parquet"),
                     "--base-url", answering.base_url, "--model", "scripted-model", "-p", "maeve")
    assert out.returncode == 0, out.stderr
    bid = re.search(r"batch (b_\w+)", out.stderr).group(1)
    assert f"batch {bid}: done" in out.stdout
    res = pd.read_parquet(tmp_path / "r.parquet")
    assert list(res.columns) == list(RESULT_COLUMNS) and list(res["status"]) == ["ok"] * 3
    assert set(res["host"]) == {"maeve"}
    listed = _fourhosts(tmp_path, "batch", "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows == [{"id": bid, "source": str(src), "state": "done", "done": 3, "failed": 0, "left": 0,
                     "total": 3, "note": "", "created_at": rows[0]["created_at"]}]


def test_a_batch_killed_with_sigkill_resumes_without_answering_anything_twice(tmp_path):
    n = 10
    pd.DataFrame({"question": questions(n)}).to_csv(tmp_path / "q.csv", index=False)
    slow = Reply.say("Lower speeds save lives [1].", usage=(1_000, 50), first_delay=0.4)
    with ScriptedServer() as server:
        server.set_default(slow)
        proc = subprocess.Popen(
            [sys.executable, "-m", "fourhosts_jupyter.cli", "batch", str(tmp_path / "q.csv"), "--column",
             "question", "--concurrency", "2", "--base-url", server.base_url, "--model", "scripted-model",
             "-p", "bernard", "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
        bid_line: list[str] = []
        reader = threading.Thread(target=lambda: bid_line.append(proc.stderr.readline()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 180
        while len(server.chat_requests) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the batch ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        reader.join(10)
        bid = re.search(r"batch (b_\w+)", bid_line[0]).group(1)
        before = Counter(asked(r) for r in server.chat_requests)

        store = Store(tmp_path / "home" / "store.duckdb")
        rows = BatchStore(store)
        info = rows.info(bid)
        assert info.state == "interrupted" and 0 < info.done < n
        first = rows.results(bid)
        finished = set(first.index[first["status"] == "ok"])
        assert len(finished) == info.done

        server.clear()
        server.set_default(slow.with_(first_delay=0.0))
        out = _fourhosts(tmp_path, "batch", "--resume", bid, "--base-url", server.base_url, "--model",
                         "scripted-model", "-q")
        assert out.returncode == 0, out.stderr
        after = Counter(asked(r) for r in server.chat_requests)

    assert not set(after) & finished  # nothing that finished was asked again
    assert set(after) | finished == set(range(n))
    assert all(c == 1 for c in after.values())
    final = rows.results(bid)
    assert list(final["status"]) == ["ok"] * n and final["run_id"].is_unique
    assert list(final.loc[sorted(finished), "run_id"]) == list(first.loc[sorted(finished), "run_id"])
    assert rows.info(bid).state == "done"
    assert sum(before.values()) >= 5


# -- the notebook face ----------------------------------------------------------------------------


@contextlib.contextmanager
def research_shell(answering, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """The IPython shell with %research pointed at a store in ``tmp_path`` and the scripted
    server (the magics' settings restored after)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    m = ip.magics_manager.registry["ResearchMagics"]
    saved = (m.store_path, m.base_url, m.model)
    m.store_path, m.base_url, m.model = str(tmp_path / "store.duckdb"), answering.base_url, "scripted-model"
    monkeypatch.setenv("FOURHOSTS_EMBEDDER", "hashing")
    try:
        yield ip
    finally:
        m.store_path, m.base_url, m.model = saved


def test_research_batch_magic_returns_the_frame_and_lists(answering, tmp_path, monkeypatch):
    from IPython.utils.capture import capture_output

    with research_shell(answering, tmp_path, monkeypatch) as ip:
        src = tmp_path / "q.csv"
        pd.DataFrame({"question": questions(2), "x": [1, 2]}).to_csv(src, index=False)
        with capture_output() as cap:
            df = ip.run_line_magic("research", f"batch {src} --column question --no-progress -p dolores")
        assert list(df["status"]) == ["ok", "ok"] and set(df["host"]) == {"dolores"}
        assert f"batch {df.attrs['batch_id']}: done" in cap.stdout
        listed = ip.run_line_magic("research", "batch --list")
        assert list(listed["id"]) == [df.attrs["batch_id"]] and list(listed["done"]) == [2]
        from IPython.core.error import UsageError

        with pytest.raises(UsageError, match="has no column 'nope'"):
            ip.run_line_magic("research", f"batch {src} --column nope")


def test_list_batches_on_an_empty_store(any_store):
    assert list_batches(any_store).empty


def test_a_cancelled_batch_is_interrupted_and_resumes_with_what_is_left(openai_server, seeded_any):
    # Ctrl-C and a kernel interrupt cancel the batch's task (schedule.batch.batch does it)
    import asyncio

    openai_server.set_default(Reply.say("Lower speeds save lives [1].", usage=(1_000, 50), first_delay=0.3))
    engine = engine_for(openai_server, seeded_any)
    started: list[str] = []
    asyncio.run(interrupt_batch(openai_server, engine, 3, on_start=started.append))
    rows = batch_rows(seeded_any)
    [bid] = started
    info = rows.info(bid)
    assert info.state == "interrupted" and info.left > 0
    first = rows.results(bid)
    finished = set(first.index[first["status"] == "ok"])
    openai_server.clear()
    done = batch(resume=bid, engine=engine, progress=False)
    assert done.attrs["state"] == "done", done[["status", "error"]].to_dict("records")
    assert list(done["status"]) == ["ok"] * 6
    assert sorted(asked(r) for r in openai_server.chat_requests) == sorted(set(range(6)) - finished)
