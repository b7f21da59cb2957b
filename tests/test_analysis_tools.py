"""The analysis tools: read-only ``sql`` over registered tables, ``run_python`` in the sandbox."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from system_packages import require_bubblewrap

from fourhosts_jupyter.errors import ConfigError, ToolArgumentsError, ToolError
from fourhosts_jupyter.paradigms import HostParadigm
from fourhosts_jupyter.tools.analysis import (
    clear_tables,
    register_table,
    registered_tables,
    run_python,
    sql,
    unregister_table,
)
from fourhosts_jupyter.tools.context import ParadigmAwareToolContext
from fourhosts_jupyter.tools.registry import Tool


@pytest.fixture(autouse=True)
def tables():
    clear_tables()
    df = pd.DataFrame({
        "city": ["Oslo", "Lyon", "Oslo", "Leeds", "Lyon"],
        "year": [2022, 2022, 2023, 2023, 2023],
        "deaths": [3, 7, 1, 12, 5],
    })
    register_table("crashes", df)
    yield df
    clear_tables()


def test_sql_aggregates_a_registered_dataframe():
    r = sql("SELECT city, sum(deaths) AS deaths FROM crashes GROUP BY city ORDER BY deaths DESC, city")
    assert r["columns"] == ["city", "deaths"]
    assert r["rows"] == [["Leeds", 12], ["Lyon", 12], ["Oslo", 4]]
    assert r["row_count"] == 3 and r["truncated"] is False
    json.dumps(r)  # plain JSON for the model
    assert list(r.df.columns) == ["city", "deaths"]


def test_sql_bounds_rows_and_says_so():
    register_table("big", pd.DataFrame({"i": range(5000)}))
    r = sql("SELECT i FROM big ORDER BY i", max_rows=10)
    assert r["row_count"] == 10 and r["truncated"] is True and r["rows"][-1] == [9]
    r = sql("SELECT i FROM big", max_rows=100_000)
    assert r["row_count"] == 1000  # the hard cap


def test_sql_allows_with_describe_show_explain():
    assert sql("WITH t AS (SELECT * FROM crashes) SELECT count(*) AS n FROM t")["rows"] == [[5]]
    assert ["crashes"] in sql("SHOW TABLES")["rows"]
    assert "city" in json.dumps(sql("DESCRIBE crashes")["rows"])
    assert sql("EXPLAIN SELECT * FROM crashes")["row_count"] >= 1


@pytest.mark.parametrize(
    "query, word",
    [
        ("CREATE TABLE x AS SELECT 1", "CREATE"),
        ("INSERT INTO crashes VALUES ('x', 1, 1)", "INSERT"),
        ("DELETE FROM crashes", "DELETE"),
        ("COPY crashes TO '/tmp/leak.csv'", "COPY"),
        ("ATTACH '/tmp/other.duckdb' AS o", "ATTACH"),
        ("INSTALL httpfs", "LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("PRAGMA database_list", "PRAGMA"),
        ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
    ],
)
def test_sql_refuses_writes_and_side_effects(query, word):
    with pytest.raises(ToolArgumentsError, match=f"read-only: {word}"):
        sql(query)


def test_sql_cannot_reach_files_or_python_variables(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("k\nTOP-SECRET\n")
    with pytest.raises(ToolError, match="disabled"):
        sql(f"SELECT * FROM read_csv('{secret}')")
    with pytest.raises(ToolError, match="disabled"):
        sql(f"SELECT * FROM '{secret}'")
    local_frame = pd.DataFrame({"leak": [1]})  # noqa: F841 - DuckDB could scan caller locals
    with pytest.raises(ToolError, match="local_frame"):
        sql("SELECT * FROM local_frame")
    with pytest.raises(ToolArgumentsError, match="exactly one"):
        sql("SELECT 1; SELECT 2")
    with pytest.raises(ToolArgumentsError, match="does not parse"):
        sql("SELEC 1")


def test_register_files_arrow_and_bad_input(tmp_path):
    csv = tmp_path / "roads.csv"
    csv.write_text("road,km\nA1,12.5\nB2,3\n")
    register_table("roads", csv)
    register_table("arrow_t", pa.table({"x": [1, 2, 3]}))
    csv.unlink()  # read once at registration: later queries need no file access
    assert sql("SELECT sum(km) AS km FROM roads")["rows"] == [[15.5]]
    assert sql("SELECT max(x) FROM arrow_t")["rows"] == [[3]]
    assert registered_tables()["roads"] == (2, 2)
    unregister_table("roads")
    assert "roads" not in registered_tables()
    with pytest.raises(ConfigError, match="table name"):
        register_table("1bad name", pd.DataFrame())
    with pytest.raises(ConfigError, match="cannot register"):
        register_table("x", [1, 2])
    with pytest.raises(ConfigError, match="no such file"):
        register_table("x", tmp_path / "missing.parquet")


def test_run_python_reads_registered_tables_and_makes_a_chart():
    require_bubblewrap()  # the result must say bubblewrap; the weaker tier is tested in test_sandbox
    code = (
        "import pandas as pd\nimport matplotlib.pyplot as plt\n"
        "df = pd.read_parquet('data/crashes.parquet')\n"
        "s = df.groupby('city').deaths.sum().sort_values()\nprint(s.to_dict())\n"
        "s.plot.barh(); plt.tight_layout(); plt.savefig('deaths.png')\n"
    )
    r = run_python(code)
    assert r["status"] == "ok", r["stderr"]
    assert json.loads(r["stdout"].replace("'", '"')) == {"Oslo": 4, "Leeds": 12, "Lyon": 12}
    assert r["images"] == ["deaths.png"]
    assert [f["name"] for f in r["files"]] == ["deaths.png"]  # the input copy is not listed
    text = json.dumps(r)  # JSON for the model, without image bytes
    assert "base64" not in text and r["isolation_level"] == "bubblewrap"
    assert r.sandbox.images[0].data.startswith(b"\x89PNG")


def test_run_python_uses_the_hosts_profile_from_the_context():
    ctx = ParadigmAwareToolContext(paradigm=HostParadigm.BERNARD)
    r = run_python("print('hi')", ctx)
    assert r["limits"]["memory_mb"] == 3072 and r["limits"]["level"] == "maximum"
    r = run_python("print('hi')")
    assert r["limits"]["level"] == "secure"


def test_run_python_errors_and_gating():
    r = run_python("raise ValueError('bad input')")
    assert r["status"] == "error" and "ValueError: bad input" in r["stderr"]
    r = run_python("print('z' * 50_000)")
    assert r["stdout"]["type"] == "digest" and r["stdout"]["meta"]["length"] == 50_001
    with pytest.raises(ToolArgumentsError):
        run_python("   ")


def test_tools_build_schemas_without_the_context():
    rp = Tool.from_function(run_python)
    assert rp.context_param == "ctx"
    assert list(rp.parameters["properties"]) == ["code"]
    q = Tool.from_function(sql)
    assert set(q.parameters["properties"]) == {"query", "max_rows"}
    assert q.description.startswith("Run one read-only SQL query")
    assert "Only SELECT queries" in q.description
