"""The cost ledger: rows written as runs finish (offline and through the real client), prices
from the table, unknown prices, grouping, back-fill of an older store, ``fourhosts usage`` and
``%research usage``."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest
from openai_server import Call, Reply

from fourhosts_jupyter.config import Settings
from fourhosts_jupyter.engine import Engine
from fourhosts_jupyter.errors import ConfigError, RunError
from fourhosts_jupyter.events import Usage
from fourhosts_jupyter.llm.openai_chat import OpenAIChatProvider
from fourhosts_jupyter.llm.prices import PRICES, cost_usd
from fourhosts_jupyter.memory.embeddings import HashingEmbedder
from fourhosts_jupyter.memory.migrations import MIGRATIONS
from fourhosts_jupyter.memory.store import Store
from fourhosts_jupyter.tools import ToolRegistry
from fourhosts_jupyter.tools.builtins import register_builtins
from fourhosts_jupyter.usage import UsageChart, usage

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


@pytest.fixture
def store(any_store):
    """Every ledger test that takes ``store`` runs on both back-ends (DuckDB, real PostgreSQL)."""
    return any_store


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    register_builtins(reg)
    return reg


def ledger_rows(store, kind: str = "model") -> list[dict]:
    with store.connect() as con:
        return con.execute("SELECT * FROM ledger WHERE kind = ? ORDER BY finished_at, tool", [kind]).df().to_dict("records")


def openai_kind(server, model: str) -> OpenAIChatProvider:
    # kind "openai" pointed at the loopback server: list prices apply as on api.openai.com
    return OpenAIChatProvider("openai", model=model, api_key="test-key", base_url=server.base_url, max_retries=0)


def run_with(store, provider=None, registry=None, paradigm="bernard", **settings):
    engine = Engine(Settings(max_retries=0, **settings), store=store, embedder=HashingEmbedder(),
                    provider=provider, tools=registry)
    return engine.research(QUESTION, paradigm=paradigm)


def test_an_offline_run_is_in_the_ledger_with_no_tokens_and_no_price(store):
    answer = Engine(Settings(provider="offline"), store=store, embedder=HashingEmbedder()).research(
        QUESTION, paradigm="teddy")
    (row,) = ledger_rows(store)
    assert (row["run_id"], row["host"], row["provider"], row["model"], row["status"]) == (
        answer.run_id, "teddy", "offline", "extractive", "ok")
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (0, 0, 0)
    assert pd.isna(row["cost_usd"])  # unknown, not $0
    assert row["day"] == pd.Timestamp(dt.datetime.now(dt.timezone.utc).date())  # UTC


def test_a_priced_run_with_tools_records_the_servers_usage_at_the_tables_price(openai_server, store, registry):
    openai_server.script(
        Reply.parallel(Call("search_memory", {"query": "speed"}, id="c1"),
                       Call("search_memory", {"query": "cameras"}, id="c2"),
                       Call("no_such_tool", {}, id="c3"), usage=(1000, 50)),
        Reply.say("Cut speeds [1].", usage=(1500, 200)),
    )
    answer = run_with(store, openai_kind(openai_server, "gpt-4o-mini"), registry)
    (row,) = ledger_rows(store)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (2500, 250, 2750)
    assert row["model"] == "gpt-4o-mini" and row["provider"] == "openai" and row["host"] == "bernard"
    # the price table's figure for the usage the server reported in each response
    table_cost = (cost_usd("gpt-4o-mini", Usage(1000, 50, 1050)) + cost_usd("gpt-4o-mini", Usage(1500, 200, 1700)))
    assert PRICES["gpt-4o-mini"].input > 0 and table_cost > 0
    assert row["cost_usd"] == pytest.approx(table_cost, rel=1e-12)
    assert answer.usage.cost_usd == pytest.approx(row["cost_usd"], rel=1e-12)
    tools = {r["tool"]: (r["calls"], r["failed"]) for r in ledger_rows(store, "tool")}
    # the unknown tool failed, and Bernard's fallback tool ran in its place (a third search)
    assert tools == {"search_memory": (3, 0), "no_such_tool": (1, 1)}


def test_an_unknown_price_leaves_the_cost_null_but_counts_the_tokens(openai_server, store, registry):
    openai_server.script(Reply.say("Local answer.", usage=(700, 70)))
    run_with(store, None, registry, base_url=openai_server.base_url, model="llama3.1:8b")
    openai_server.script(Reply.say("Priced answer.", usage=(1000, 100)))
    run_with(store, openai_kind(openai_server, "gpt-4.1-mini"), registry, paradigm="maeve")
    by_model = usage("model", store=store).set_index("model")
    local, priced = by_model.loc["llama3.1:8b"], by_model.loc["gpt-4.1-mini"]
    assert (local["total_tokens"], local["unpriced_runs"]) == (770, 1) and pd.isna(local["cost_usd"])
    assert priced["unpriced_runs"] == 0
    assert priced["cost_usd"] == pytest.approx(cost_usd("gpt-4.1-mini", Usage(1000, 100, 1100)), rel=1e-12)
    # by day: the priced run's cost (the known part), with the unpriced run counted apart
    (day,) = usage("day", store=store).to_dict("records")
    assert (day["runs"], day["total_tokens"], day["unpriced_runs"]) == (2, 1870, 1)
    assert day["cost_usd"] == pytest.approx(priced["cost_usd"], rel=1e-12)


def test_usage_groups_by_host_model_tool_and_run(openai_server, store, registry):
    for host, reply in (("bernard", Reply.say("a", usage=(100, 10))),
                        ("bernard", Reply.say("b", usage=(200, 20))),
                        ("dolores", Reply.say("c", usage=(400, 40)))):
        openai_server.script(reply)
        run_with(store, openai_kind(openai_server, "gpt-4o"), registry, paradigm=host)
    openai_server.script(Reply.call("search_memory", {"query": "x"}, usage=(10, 1)), Reply.say("d", usage=(20, 2)))
    run_with(store, openai_kind(openai_server, "gpt-4o"), registry, paradigm="teddy")
    openai_server.script(Reply.fail(401, "Incorrect API key provided"))
    with pytest.raises(RunError):
        run_with(store, openai_kind(openai_server, "gpt-4o"), registry, paradigm="teddy")

    hosts = usage("host", store=store).set_index("host")
    assert hosts.loc["bernard", "runs"] == 2 and hosts.loc["bernard", "total_tokens"] == 330
    assert hosts.loc["dolores", "runs"] == 1 and hosts.loc["dolores", "total_tokens"] == 440
    assert (hosts.loc["teddy", "runs"], hosts.loc["teddy", "failed"], hosts.loc["teddy", "total_tokens"]) == (2, 1, 33)
    assert list(usage("host", store=store)["host"]) == ["dolores", "bernard", "teddy"]  # costliest first
    assert list(usage("model", store=store)["runs"]) == [5]
    (tool,) = usage("tool", store=store).to_dict("records")
    assert (tool["tool"], tool["runs"], tool["calls"], tool["failed"], tool["total_tokens"]) == ("search_memory", 1, 1, 0, 33)
    runs = usage("run", store=store)
    assert len(runs) == 5 and list(runs["status"]) == ["ok"] * 4 + ["failed"]
    with pytest.raises(ConfigError, match="cannot group usage by 'week'"):
        usage("week", store=store)


def _assert_back_filled(store) -> None:  # noqa: ANN001
    """The ledger a migration filled from the two finished old runs of the back-fill tests."""
    rows = {r["run_id"]: r for r in ledger_rows(store)}
    assert set(rows) == {"r_old1", "r_old2"}  # a run still running is not in the ledger yet
    assert (rows["r_old1"]["total_tokens"], rows["r_old1"]["cost_usd"]) == (1500, 0.006)
    assert rows["r_old1"]["day"] == pd.Timestamp("2026-11-02")
    assert rows["r_old2"]["total_tokens"] == 55 and pd.isna(rows["r_old2"]["cost_usd"])
    assert rows["r_old2"]["failed"] == 1
    (tool,) = ledger_rows(store, "tool")
    assert (tool["tool"], tool["calls"], tool["failed"], tool["seconds"]) == ("search_memory", 2, 1, 0.75)
    with store.connect() as con:  # nothing that was stored is lost
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 3


def test_runs_in_a_store_from_before_the_ledger_are_back_filled(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    for m in MIGRATIONS[:3]:  # the schema as it shipped before the ledger
        m(con)
        con.execute("INSERT INTO _migrations VALUES (?, now())", [m.__name__])
    finished = dt.datetime(2026, 11, 2, 9, 30)
    con.execute(
        """INSERT INTO runs (id, question, paradigm, provider, model, status, usage, cost_usd,
                             started_at, finished_at) VALUES
           ('r_old1', 'q1', 'maeve', 'openai', 'gpt-4o', 'ok',
            '{"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500, "cost_usd": 0.006}', 0.006, ?, ?),
           ('r_old2', 'q2', 'teddy', 'compatible', 'llama3.1:8b', 'failed',
            '{"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55, "cost_usd": null}', NULL, ?, ?),
           ('r_live', 'q3', 'teddy', 'openai', 'gpt-4o', 'running', NULL, NULL, ?, NULL)""",
        [finished, finished, finished, finished, finished],
    )
    con.execute(
        """INSERT INTO run_events VALUES
           ('r_old1', 3, 'tool_call_finished', 1.0, '{"name": "search_memory", "seconds": 0.25}'),
           ('r_old1', 4, 'tool_call_failed', 1.5, '{"name": "search_memory", "seconds": 0.5}')"""
    )
    con.close()

    store = Store(path)
    assert "m005_ledger" in store.schema_version()
    _assert_back_filled(store)


# -- the display object, the magic, the command ----------------------------------------------


def test_the_chart_is_a_png_whose_text_form_is_the_table(store):
    Engine(Settings(provider="offline"), store=store, embedder=HashingEmbedder()).research(QUESTION, paradigm="maeve")
    df = usage("host", store=store)
    bundle = UsageChart(df, "host")._repr_mimebundle_()
    assert bundle["text/plain"] == df.to_string(index=False) and "maeve" in bundle["text/plain"]
    import base64

    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    empty = UsageChart(usage("tool", store=store), "tool")._repr_mimebundle_()
    assert empty == {"text/plain": "no tool calls in the ledger yet"}


def test_research_usage_magic_returns_a_dataframe_and_draws_the_chart(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    m = ip.magics_manager.registry["ResearchMagics"]
    before = m.store_path
    m.store_path = str(tmp_path / "store.duckdb")
    try:
        Engine(Settings(provider="offline"), store=Store(tmp_path / "store.duckdb"),
               embedder=HashingEmbedder()).research(QUESTION, paradigm="dolores")
        with capture_output() as cap:
            df = ip.run_line_magic("research", "usage --by host")
        assert isinstance(df, pd.DataFrame) and list(df["host"]) == ["dolores"] and df["runs"].iloc[0] == 1
        (shown,) = cap.outputs
        assert "image/png" in shown.data and shown.data["text/plain"] == df.to_string(index=False)
        from IPython.core.error import UsageError

        with pytest.raises(UsageError, match="invalid choice: 'week'"):
            ip.run_line_magic("research", "usage --by week")
    finally:
        m.store_path = before


def fourhosts(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "FOURHOSTS_HOME": str(home), "FOURHOSTS_EMBEDDER": "hashing"}
    return subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args], capture_output=True,
                          text=True, timeout=180, env=env)


def test_cli_usage_json_is_one_object_per_row(tmp_path, openai_server, registry):
    home = tmp_path / "home"
    store = Store(home / "store.duckdb")
    openai_server.script(Reply.say("a", usage=(1200, 300)))
    run_with(store, openai_kind(openai_server, "gpt-4o"), registry, paradigm="bernard")
    Engine(Settings(provider="offline"), store=store, embedder=HashingEmbedder()).research(QUESTION, paradigm="maeve")

    out = fourhosts("usage", "--by", "host", "--json", home=home)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["host"] for r in rows] == ["bernard", "maeve"]
    assert rows[0]["total_tokens"] == 1500 and rows[0]["cost_usd"] == pytest.approx(cost_usd("gpt-4o", Usage(1200, 300, 1500)))
    assert rows[1]["cost_usd"] is None and rows[1]["runs"] == 1

    out = fourhosts("usage", "--json", home=home)  # by day (the default)
    (day,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert day["day"] == dt.datetime.now(dt.timezone.utc).date().isoformat() and day["runs"] == 2

    out = fourhosts("usage", "--by", "model", home=home)
    assert out.returncode == 0 and "gpt-4o" in out.stdout and "extractive" in out.stdout


def test_cli_usage_on_a_missing_store_creates_nothing_and_a_bad_group_is_one_line(tmp_path):
    home = tmp_path / "nohome"
    out = fourhosts("usage", "--json", home=home)
    assert (out.returncode, out.stdout) == (0, "")
    out = fourhosts("usage", home=home)
    assert out.returncode == 0 and "no finished runs" in out.stdout
    assert not (home / "store.duckdb").exists()
    out = fourhosts("usage", "--by", "week", home=home)
    assert out.returncode == 2 and "invalid choice: 'week'" in out.stderr and "Traceback" not in out.stderr


def test_runs_in_a_postgres_store_from_before_the_ledger_are_back_filled(pg_url):
    """p005 fills the ledger from the runs a shared store already holds, as m005 does."""
    import psycopg

    from fourhosts_jupyter.memory.backends import open_store
    from fourhosts_jupyter.memory.pg_migrations import PG_MIGRATIONS, SCHEMA

    finished = dt.datetime(2026, 11, 2, 9, 30)
    with psycopg.connect(pg_url) as con:  # the schema as it shipped before p005
        con.execute("CREATE EXTENSION IF NOT EXISTS vector")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        con.execute(f"SET search_path TO {SCHEMA}, public")
        con.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP)")
        for m in [m for m in PG_MIGRATIONS if m.__name__ < "p005"]:
            m(con)
            con.execute("INSERT INTO _migrations VALUES (%s, now())", [m.__name__])
        con.execute(
            """INSERT INTO runs (id, question, paradigm, provider, model, status, usage, cost_usd,
                                 started_at, finished_at) VALUES
               ('r_old1', 'q1', 'maeve', 'openai', 'gpt-4o', 'ok',
                '{"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}', 0.006, %s, %s),
               ('r_old2', 'q2', 'teddy', 'compatible', 'llama3.1:8b', 'failed',
                '{"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55, "cost_usd": null}', NULL, %s, %s),
               ('r_live', 'q3', 'teddy', 'openai', 'gpt-4o', 'running', NULL, NULL, %s, NULL)""",
            [finished] * 5,
        )
        con.execute(
            """INSERT INTO run_events VALUES
               ('r_old1', 3, 'tool_call_finished', 1.0, '{"name": "search_memory", "seconds": 0.25}'),
               ('r_old1', 4, 'tool_call_failed', 1.5, '{"name": "search_memory", "seconds": 0.5}')""")
    store = open_store(pg_url)
    assert "p005_ledger_comparisons" in store.schema_version()
    _assert_back_filled(store)


def test_usage_of_a_postgres_store_through_the_command_and_the_magic(pg_url, tmp_path, openai_server, registry):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from fourhosts_jupyter.memory.backends import open_store

    store = open_store(pg_url)
    openai_server.script(Reply.say("a", usage=(1200, 300)))
    run_with(store, openai_kind(openai_server, "gpt-4o"), registry, paradigm="bernard")
    Engine(Settings(provider="offline"), store=store, embedder=HashingEmbedder()).research(QUESTION, paradigm="maeve")

    out = fourhosts("usage", "--by", "host", "--json", "--store", pg_url, home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["host"] for r in rows] == ["bernard", "maeve"]
    assert rows[0]["total_tokens"] == 1500 and rows[0]["cost_usd"] == pytest.approx(cost_usd("gpt-4o", Usage(1200, 300, 1500)))
    out = fourhosts("usage", "--json", "--store", pg_url, home=tmp_path / "home")
    (day,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert day["day"] == dt.datetime.now(dt.timezone.utc).date().isoformat() and day["runs"] == 2

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    with capture_output() as cap:
        df = ip.run_line_magic("research", f"usage --by host --store {pg_url}")
    assert list(df["host"]) == ["bernard", "maeve"] and list(df["runs"]) == [1, 1]
    (shown,) = cap.outputs
    assert "image/png" in shown.data and shown.data["text/plain"] == df.to_string(index=False)
