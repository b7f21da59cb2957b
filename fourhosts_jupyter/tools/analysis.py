"""Analysis tools for the model (and the analyst): ``run_python`` in the sandbox, read-only ``sql``.

    fh.register_table("crashes", df)            # a DataFrame, a pyarrow Table, or a CSV/Parquet/JSON path
    sql("SELECT city, count(*) FROM crashes GROUP BY city")
    run_python("import pandas as pd; print(pd.read_parquet('data/crashes.parquet').describe())")

Both are plain annotated functions; the tool registry builds their schemas. ``sql`` runs on a
fresh in-memory DuckDB connection that sees only the registered tables, with file-system access
disabled and the configuration locked; only SELECT (incl. WITH / DESCRIBE / SHOW / SUMMARIZE)
and EXPLAIN statements run. ``run_python`` runs the code in the sandbox with the active host's
profile; registered tables the code names are copied in as ``data/<name>.parquet``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import html
import io
import math
import re
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, SandboxError, ToolArgumentsError, ToolError

if TYPE_CHECKING:
    from ..sandbox.result import SandboxResult
    from .context import ParadigmAwareToolContext

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_ROWS = 1000
DEFAULT_ROWS = 100
MAX_CELL_CHARS = 500
SQL_TIMEOUT_S = 30.0
_ALLOWED = ("SELECT", "EXPLAIN")

_tables: dict[str, Any] = {}  # name → pandas DataFrame or pyarrow Table, for this session
_tables_lock = threading.Lock()


# -- the session's tables ------------------------------------------------------------------


def register_table(name: str, data: Any) -> None:
    """Make ``data`` queryable as ``name`` by ``sql`` and readable by ``run_python``.

    ``data`` is a pandas DataFrame, a pyarrow Table, or the path of a CSV, Parquet or JSON file
    (read once, now). Registering a name again replaces it.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"table name {name!r} is not allowed: use letters, digits and '_' (not first), "
            "at most 63 characters"
        )
    if isinstance(data, (str, Path)):
        data = _read_file(Path(data))
    elif not (_is_dataframe(data) or _is_arrow(data)):
        raise ConfigError(
            f"cannot register {type(data).__name__} as a table: pass a pandas DataFrame, a "
            "pyarrow Table or a CSV/Parquet/JSON file path"
        )
    with _tables_lock:
        _tables[name] = data


def unregister_table(name: str) -> None:
    with _tables_lock:
        _tables.pop(name, None)


def registered_tables() -> dict[str, tuple[int, int]]:
    """Registered names with (rows, columns)."""
    with _tables_lock:
        items = list(_tables.items())
    return {n: (t.shape[0], t.shape[1]) for n, t in items}


def clear_tables() -> None:
    with _tables_lock:
        _tables.clear()


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_parquet")


def _is_arrow(obj: Any) -> bool:
    return type(obj).__name__ == "Table" and hasattr(obj, "schema") and hasattr(obj, "num_rows")


def _read_file(path: Path) -> Any:
    import duckdb

    readers = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".parquet": "read_parquet",
               ".json": "read_json_auto", ".jsonl": "read_json_auto", ".ndjson": "read_json_auto"}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise ConfigError(f"{path}: unknown table file type; use .csv, .tsv, .parquet, .json or .jsonl")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; check the path")
    con = duckdb.connect(":memory:")
    try:
        return con.sql(f"SELECT * FROM {reader}(?)", params=[str(path)]).to_arrow_table()
    except duckdb.Error as exc:
        raise ConfigError(f"{path}: could not be read as a table ({exc})") from exc
    finally:
        con.close()


# -- sql -----------------------------------------------------------------------------------


def sql(query: str, max_rows: int = DEFAULT_ROWS) -> dict:
    """Run one read-only SQL query (DuckDB dialect) over the tables the analyst registered.

    Only SELECT queries (also WITH, DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN are allowed; files,
    extensions and writes are not. Use SHOW TABLES to see what is registered.

    Args:
        query: a single SQL SELECT statement.
        max_rows: most rows to return (1-1000); the result says if more were left out.
    """
    import duckdb

    statements = _check_query(query)
    limit = max(1, min(int(max_rows), MAX_ROWS))
    con = duckdb.connect(":memory:")
    timer = threading.Timer(SQL_TIMEOUT_S, con.interrupt)
    try:
        with _tables_lock:
            tables = dict(_tables)
        for name, data in tables.items():
            con.register(name, data)
        for setting in ("SET python_enable_replacements=false", "SET enable_external_access=false",
                        "SET memory_limit='1GB'", "SET lock_configuration=true"):
            con.execute(setting)
        timer.start()
        cur = con.execute(statements[0].query)
        rows = cur.fetchmany(limit + 1)
        columns = [d[0] for d in (cur.description or [])]
    except duckdb.InterruptException as exc:
        raise ToolError(f"SQL query stopped after {SQL_TIMEOUT_S:.0f} s: make it cheaper (filter or aggregate)") from exc
    except duckdb.Error as exc:
        raise ToolError(f"SQL error: {_one_line(exc)}") from exc
    finally:
        timer.cancel()
        con.close()
    truncated = len(rows) > limit
    rows = rows[:limit]
    return SqlResult(
        query=query.strip(),
        columns=columns,
        rows=[[_jsonable(v) for v in r] for r in rows],
        row_count=len(rows),
        truncated=truncated,
    )


def _check_query(query: str) -> list[Any]:
    import duckdb

    if not isinstance(query, str) or not query.strip():
        raise ToolArgumentsError("sql needs a query: pass one SELECT statement")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise ToolArgumentsError(f"SQL does not parse: {_one_line(exc)}") from exc
    if len(statements) != 1:
        raise ToolArgumentsError(f"sql runs exactly one statement; got {len(statements)}: split them")
    kind = statements[0].type.name
    if kind not in _ALLOWED:
        raise ToolArgumentsError(
            f"sql is read-only: {kind} statements are refused (no writes, ATTACH, COPY, INSTALL, "
            "LOAD, SET or PRAGMA). Use a SELECT over the registered tables; the analyst adds "
            "data with fh.register_table(name, df)."
        )
    return statements


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v[:MAX_CELL_CHARS] if isinstance(v, str) else v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)[:MAX_CELL_CHARS]).decode("ascii")
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):  # numpy scalars
        return _jsonable(v.item())
    return str(v)[:MAX_CELL_CHARS]


class SqlResult(dict):
    """The ``sql`` tool's result: a plain dict for the model, a table for the analyst."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)

    @property
    def df(self):  # noqa: ANN201 - pandas.DataFrame, imported lazily
        import pandas as pd

        return pd.DataFrame(self["rows"], columns=self["columns"])

    def _repr_html_(self) -> str:
        more = " (more rows were left out)" if self["truncated"] else ""
        table = self.df.to_html(index=False, escape=True, max_rows=50)
        return f"<div><code>{html.escape(self['query'])}</code> · {self['row_count']} rows{more}</div>{table}"


# -- run_python ----------------------------------------------------------------------------


def run_python(code: str, ctx: ParadigmAwareToolContext | None = None) -> dict:
    """Run Python code in an isolated sandbox and return its output and the files it made.

    No network and no access to the analyst's files; pandas, numpy and matplotlib are available
    (save charts with plt.savefig('chart.png')). Registered tables are readable as
    pd.read_parquet('data/<name>.parquet'). Print what you want to see.

    Args:
        code: a complete Python script; its printed output is returned.
    """
    from ..sandbox import run_code

    if not isinstance(code, str) or not code.strip():
        raise ToolArgumentsError("run_python needs code: pass a Python script as a string")
    host = ctx.paradigm if ctx is not None else None
    try:
        result = run_code(code, host=host, files=_table_files(code), for_model=True)
    except SandboxError as exc:
        raise ToolError(f"the sandbox could not start: {exc}") from exc
    return AnalysisResult(result)


def _table_files(code: str) -> dict[str, bytes]:
    """Registered tables the code mentions by name, as Parquet files for the sandbox."""
    with _tables_lock:
        tables = dict(_tables)
    files: dict[str, bytes] = {}
    for name, data in tables.items():
        if not re.search(rf"\b{re.escape(name)}\b", code):
            continue
        buf = io.BytesIO()
        if _is_arrow(data):
            import pyarrow.parquet as pq

            pq.write_table(data, buf)
        else:
            data.to_parquet(buf, index=False)
        files[f"data/{name}.parquet"] = buf.getvalue()
    return files


class AnalysisResult(dict):
    """The ``run_python`` result: a gated, JSON-able dict for the model (no image bytes);
    shown to the analyst with its images through the sandbox result's display."""

    def __init__(self, result: SandboxResult) -> None:
        data = result.to_dict(gated=True)
        data["files"] = [f for f in data["files"] if not f["name"].startswith("data/")]
        data["images"] = [f.name for f in result.images]
        super().__init__(data)
        self.sandbox = result

    def _ipython_display_(self) -> None:
        self.sandbox._ipython_display_()

    def _repr_mimebundle_(self, include=None, exclude=None):  # noqa: ANN001, ANN202
        return self.sandbox._repr_mimebundle_(include, exclude)
