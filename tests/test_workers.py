"""Batch workers on a real PostgreSQL (pgserver), the model replaced by the loopback scripted
server through the real ``openai`` client: ``fourhosts worker`` subprocesses answer a batch,
one is killed with SIGKILL mid-item and the other answers its items after the lease (each item
recorded once); a budget holds across two workers; ``fh.batch(workers=True)`` from this
process; recording an answer is idempotent. Short heartbeats and leases keep it quick."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest
from openai_server import Reply

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.memory.backends import open_store
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.store import Store
from fourhosts_jupyter.schedule.batch import batch
from fourhosts_jupyter.schedule.batch_store import RESULT_COLUMNS, ItemResult
from fourhosts_jupyter.schedule.pg_batch_store import PgBatchStore
from fourhosts_jupyter.testing import ScriptedServer
from fourhosts_jupyter.tools import ToolRegistry
from test_batch import asked, questions

# seconds: a dead worker's items go back within ~5 s (a lease this short still outlasts a busy
# event loop: a live worker taken for dead would only cost a second attempt, never a 2nd answer)
if importlib.util.find_spec("procrastinate") is None:  # the workers' queue ([postgres] extra)
    from system_packages import unavailable

    unavailable("procrastinate is not installed (pip install -e '.[test,postgres]')", module=True)

HEARTBEAT, LEASE = "0.5", "4"


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["FOURHOSTS_HOME"] = str(tmp_path / "home")
    env["FOURHOSTS_EMBEDDER"] = "hashing"
    return env


@contextlib.contextmanager
def workers(url: str, tmp_path, n: int = 1, concurrency: int = 2):  # noqa: ANN001, ANN201
    """``n`` ``fourhosts worker`` subprocesses pointed at ``url`` by FOURHOSTS_STORE (as README's
    team set-up does); stopped (SIGTERM, then SIGKILL) after."""
    procs = [subprocess.Popen(
        [sys.executable, "-m", "fourhosts_jupyter.cli", "worker", "-c", str(concurrency),
         "--heartbeat", HEARTBEAT, "--lease", LEASE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**_env(tmp_path), "FOURHOSTS_STORE": url}) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


def engine_for(server: ScriptedServer, store) -> Engine:  # noqa: ANN001
    s = Settings(base_url=server.base_url, model="scripted-model", max_retries=0)
    return Engine(s, store=store, embedder=HashingEmbedder(), tools=ToolRegistry())


def _wait(cond, timeout: float = 120.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_killed_mid_item_loses_nothing_and_nothing_is_answered_twice(pg_url, tmp_path):
    n = 8
    pd.DataFrame({"question": questions(n)}).to_csv(tmp_path / "q.csv", index=False)
    slow = Reply.say("Lower speeds save lives [1].", usage=(1_000, 50), first_delay=1.5)
    with ScriptedServer() as server:
        server.set_default(slow)
        with workers(pg_url, tmp_path) as [first]:
            submit = subprocess.Popen(
                [sys.executable, "-m", "fourhosts_jupyter.cli", "batch", str(tmp_path / "q.csv"), "--column",
                 "question", "--workers", "--store", pg_url, "--base-url", server.base_url, "--model",
                 "scripted-model", "-p", "bernard", "-q"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
            _wait(lambda: len(server.chat_requests) >= 2)  # both of its slots are mid-item
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
            cut = Counter(asked(r) for r in server.chat_requests)
            server.set_default(slow.with_(first_delay=0.0))
            with workers(pg_url, tmp_path) as [second]:
                out, err = submit.communicate(timeout=180)
            assert submit.returncode == 0, err
        asked_all = Counter(asked(r) for r in server.chat_requests)

    bid = re.search(r"batch (b_\w+)", err).group(1)
    assert f"batch {bid}: done" in out
    rows = PgBatchStore(open_store(pg_url))
    res = rows.results(bid)
    assert list(res["status"]) == ["ok"] * n and res["run_id"].is_unique  # nothing lost
    killed = set(cut)
    assert 1 <= len(killed) <= 2 and all(c == 1 for c in cut.values())
    # the killed worker's items were asked again (once), every other item exactly once
    assert {i: asked_all[i] for i in range(n)} == {i: 2 if i in killed else 1 for i in range(n)}
    with rows.store.connect() as con:
        recorded = con.execute("SELECT idx, run_id FROM batch_results WHERE batch_id = %s ORDER BY idx",
                               [bid]).fetchall()
        attempts = dict(con.execute("SELECT idx, attempts FROM batch_items WHERE batch_id = %s",
                                    [bid]).fetchall())
    assert [i for i, _ in recorded] == list(range(n))  # one answer recorded per item
    assert [r for _, r in recorded] == list(res["run_id"])
    assert attempts == {i: 2 if i in killed else 1 for i in range(n)}
    assert rows.info(bid).state == "done"


def test_a_budget_holds_across_two_workers(pg_url, tmp_path):
    store = open_store(pg_url)
    # each call is estimated at ~6,000 tokens (prompt + tool-turn output cap) and uses 3,500:
    # one worker alone would answer 5 items inside 20,000, two alone would answer all 10 (35,000)
    with ScriptedServer() as server:
        server.set_default(Reply.say("Lower speeds save lives [1].", usage=(3_000, 500), first_delay=0.3))
        with workers(pg_url, tmp_path, n=2):
            df = batch(questions(10), engine=engine_for(server, store), workers=True, budget_tokens=20_000,
                       paradigm="teddy", progress=False)
            sent = len(server.chat_requests)
            first = Counter(asked(r) for r in server.chat_requests)
            spent, _ = PgBatchStore(store).spent(df.attrs["batch_id"])
            # resumed with room for the rest: only what the budget left is asked, once
            server.clear()
            again = batch(resume=df.attrs["batch_id"], engine=engine_for(server, store), workers=True,
                          budget_tokens=100_000, progress=False)
            rest = Counter(asked(r) for r in server.chat_requests)
    assert df.attrs["state"] == "stopped" and "budget" in df.attrs["note"]
    ok = df[df["status"] == "ok"]
    assert 1 <= len(ok) < 10 and sent == len(ok)
    assert df["tokens"].sum() == 3_500 * len(ok) <= 20_000
    left = df[df["status"] == "pending"]
    assert len(left) == 10 - len(ok) and left["error"].str.contains("across workers").all()
    assert spent == 3_500 * len(ok)  # nothing left held, nothing counted twice
    assert again.attrs["state"] == "done" and list(again["status"]) == ["ok"] * 10
    assert set(rest) == set(range(10)) - set(first) and all(c == 1 for c in rest.values())
    assert list(again.loc[list(ok.index), "run_id"]) == list(ok["run_id"])


def test_fh_batch_with_workers_returns_the_same_frame(pg_url, tmp_path, capsys, monkeypatch):
    import threading

    from fourhosts_jupyter.schedule import submit

    monkeypatch.setattr(submit, "NO_WORKER_HINT", 0.3)  # say so soon that no worker answers
    store = open_store(pg_url)
    with ScriptedServer() as server:
        server.set_default(Reply.say("Lower speeds save lives [1].", usage=(900, 40)))
        box: dict = {}
        waiting = threading.Thread(target=lambda: box.update(df=batch(
            pd.DataFrame({"q": questions(4)}), column="q", engine=engine_for(server, store), workers=True,
            paradigm="maeve", progress=True)))
        waiting.start()
        err: list[str] = []
        _wait(lambda: err.append(capsys.readouterr().err) or "no worker is answering" in "".join(err))
        hint = next(line for line in "".join(err).splitlines() if "no worker" in line)
        from fourhosts_jupyter.redact import redact  # the URL's credentials never shown

        assert hint.endswith(f"start one with  fourhosts worker --store {redact(pg_url)}")
        with workers(pg_url, tmp_path):
            waiting.join(120)
        assert sorted(asked(r) for r in server.chat_requests) == [0, 1, 2, 3]
    df = box["df"]
    assert list(df.columns) == list(RESULT_COLUMNS) and list(df["question"]) == questions(4)
    assert df.attrs["state"] == "done" and list(df["status"]) == ["ok"] * 4
    assert set(df["host"]) == {"maeve"} and list(df["tokens"]) == [940] * 4
    assert "batch: done 4 · failed 0 · left 0 · 3,760 tokens" in capsys.readouterr().err
    runs = store.runs().set_index("id")
    assert set(runs.loc[list(df["run_id"]), "status"]) == {"ok"}
    info = PgBatchStore(store).info(df.attrs["batch_id"])
    assert (info.state, info.done, info.source, info.options["workers"]) == ("done", 4, "dataframe", True)


def test_workers_need_a_postgres_store(tmp_path):
    duck = Store(tmp_path / "store.duckdb")
    with pytest.raises(ConfigError, match=r"workers need a PostgreSQL store: pass --store postgresql://"):
        batch(questions(1), engine=Engine(Settings(), store=duck), workers=True, progress=False)
    pd.DataFrame({"question": questions(1)}).to_csv(tmp_path / "q.csv", index=False)
    for args in (["batch", str(tmp_path / "q.csv"), "--workers", "--store", str(tmp_path / "s.duckdb")],
                 ["worker", "--store", str(tmp_path / "s.duckdb")]):
        out = subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args], capture_output=True,
                             text=True, timeout=120, env=_env(tmp_path))
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            "fourhosts: error: workers need a PostgreSQL store: pass --store postgresql://… "
            "(or set FOURHOSTS_STORE to it)"]
    assert not (tmp_path / "s.duckdb").exists()  # nothing created


def test_an_answer_is_recorded_once_and_a_finished_item_is_not_claimed_again(pg_url):
    rows = PgBatchStore(open_store(pg_url))
    rows.create("b_once", questions(2), source="list", column="", options={"workers": True})
    assert rows.begin("b_once", 0, "w1") == (questions(2)[0], 1)
    assert rows.begin("b_once", 0, "w2") == (questions(2)[0], 2)  # the lease ran out: again
    first = ItemResult(0, "ok", "r_first", host="bernard", answer="A [1].", tokens=10)
    late = ItemResult(0, "ok", "r_late", host="bernard", answer="B [1].", tokens=20)
    assert rows.record("b_once", first, "w2") is True
    assert rows.record("b_once", late, "w1") is False  # the slower attempt changes nothing
    assert rows.record("b_once", ItemResult(0, "failed", error="boom"), "w1") is False
    assert rows.begin("b_once", 0, "w3") is None  # answered: a retried job does nothing
    res = rows.results("b_once")
    assert (res.loc[0, "run_id"], res.loc[0, "answer"], res.loc[0, "status"]) == ("r_first", "A [1].", "ok")
    assert rows.dead_letters("b_once").empty
    with rows.store.connect() as con:
        assert con.execute("SELECT count(*) FROM batch_results").fetchone()[0] == 1


def test_a_hold_left_by_a_dead_attempt_is_spent_not_freed(pg_url):
    rows = PgBatchStore(open_store(pg_url))
    rows.create("b_hold", questions(2), source="list", column="",
                options={"workers": True, "budget_tokens": 5_000})
    rows.begin("b_hold", 0, "w1")
    rows.reserve("b_hold", 0, 3_000, None)  # w1 dies mid-call
    from fourhosts_jupyter.errors import BudgetExceeded

    with pytest.raises(BudgetExceeded, match="2,000 left across workers"):
        rows.reserve("b_hold", 1, 2_500, None)
    rows.begin("b_hold", 0, "w2")  # the retry: the dead call may have been paid
    assert rows.spent("b_hold") == (3_000, 0.0)
    rows.reserve("b_hold", 0, 2_000, None)
    rows.release("b_hold", 0, (2_000, 0.0), 1_200, None)
    assert rows.spent("b_hold") == (4_200, 0.0)


def test_two_first_runs_seed_an_empty_shared_store_at_once(pg_server):
    # two workers' first items on an empty store both seed it (drop + build the HNSW index)
    import threading

    from fourhosts_jupyter.memory.seed import ensure_seeded
    from pg_fixtures import new_database

    for _ in range(3):
        url = new_database(pg_server)
        stores = [open_store(url), open_store(url)]
        errors: list[BaseException] = []
        gate = threading.Barrier(2)

        def seed(store) -> None:  # noqa: ANN001
            gate.wait()
            try:
                ensure_seeded(store, HashingEmbedder())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=seed, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert errors == []
        with stores[0].connect() as con:
            assert con.execute("SELECT to_regclass('fourhosts.memories_hnsw')").fetchone()[0] is not None
            dupes = con.execute("SELECT count(*) - count(DISTINCT (namespace, content_hash)) "
                                "FROM memories").fetchone()[0]
        assert stores[0].count_memories() > 0 and dupes == 0


def test_cli_batch_resume_and_list_on_postgres(pg_url, tmp_path):
    # the in-process batch (no workers) on the shared store: stopped by its budget, resumed, listed
    pd.DataFrame({"question": questions(3)}).to_csv(tmp_path / "q.csv", index=False)
    with ScriptedServer() as server:
        server.set_default(Reply.say("Lower speeds save lives [1].", usage=(1_000, 50)))
        common = ["--store", pg_url, "--base-url", server.base_url, "--model", "scripted-model", "-q"]
        run = lambda *a: subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", "batch", *a],  # noqa: E731
                                        capture_output=True, text=True, timeout=240, env=_env(tmp_path))
        first = run(str(tmp_path / "q.csv"), "--column", "question", "-p", "bernard", "-c", "1",
                    "--budget-tokens", "4000", *common)
        assert first.returncode == 1 and "stopped" in first.stderr
        bid = re.search(r"batch (b_\w+)", first.stderr).group(1)
        asked_first = len(server.chat_requests)
        again = run("--resume", bid, "--budget-tokens", "50000", *common)
        assert again.returncode == 0, again.stderr
        assert sorted(asked(r) for r in server.chat_requests) == [0, 1, 2] and asked_first < 3
    listed = run("--list", "--json", "--store", pg_url)
    import json

    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["state"], row["done"], row["left"]) == (bid, "done", 3, 0)
    assert not (tmp_path / "home" / "store.duckdb").exists()  # nothing went to a DuckDB file


def test_research_batch_magic_with_workers(pg_url, tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    m = ip.magics_manager.registry["ResearchMagics"]
    saved = (m.store_path, m.base_url, m.model)
    src = tmp_path / "q.csv"
    pd.DataFrame({"question": questions(2)}).to_csv(src, index=False)
    monkeypatch.setenv("FOURHOSTS_EMBEDDER", "hashing")
    try:
        with ScriptedServer() as server:
            server.set_default(Reply.say("Lower speeds save lives [1].", usage=(900, 40)))
            m.store_path, m.base_url, m.model = pg_url, server.base_url, "scripted-model"
            with workers(pg_url, tmp_path), capture_output() as cap:
                df = ip.run_line_magic("research", f"batch {src} --workers --no-progress -p dolores")
                assert sorted(asked(r) for r in server.chat_requests) == [0, 1]
                both = ip.run_line_magic("research", f"batch {src} --workers --no-progress --compare dolores,bernard")
    finally:
        m.store_path, m.base_url, m.model = saved
    assert list(df["status"]) == ["ok", "ok"] and set(df["host"]) == {"dolores"}
    assert f"batch {df.attrs['batch_id']}: done" in cap.stdout
    # compare: one item per question per host, each host's run answered by the workers
    assert list(both["host"]) == ["dolores", "bernard"] * 2 and list(both["status"]) == ["ok"] * 4
    assert list(both["question"]) == [q for q in questions(2) for _ in range(2)]


def test_fourhosts_store_points_commands_and_kernels_at_the_shared_store(monkeypatch, tmp_path):
    url = "postgresql://analyst@db.example/research"
    monkeypatch.setenv("FOURHOSTS_STORE", url)
    assert Settings.from_env().resolved_store_path() == url
    assert Settings.from_env(store_path=str(tmp_path / "mine.duckdb")).resolved_store_path() == tmp_path / "mine.duckdb"
    monkeypatch.setenv("FOURHOSTS_STORE", str(tmp_path / "team.duckdb"))
    assert Settings.from_env().resolved_store_path() == tmp_path / "team.duckdb"
    assert Engine(Settings.from_env()).store.path == tmp_path / "team.duckdb"
