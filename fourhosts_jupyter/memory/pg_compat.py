"""The DuckDB dialect the store's other users write, spoken on a PostgreSQL connection: ``?``
parameter markers, ``INSERT OR REPLACE``/``INSERT OR IGNORE``, and ``.df()`` on a result.

Features outside the core (learning, evaluation, …) run their SQL through ``store.connect()``;
this lets the part of it that is plain SQL run unchanged on the shared store. What is not
plain SQL (DuckDB functions, Arrow registration) still fails, with StorageError's one line.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

# the conflict key of each table ``INSERT OR REPLACE`` is used on
UPSERT_KEYS = {"run_features": ("run_id",), "store_info": ("name",), "web_cache": ("kind", "key")}
_DATE_OID = 1082
_OR = re.compile(r"^\s*INSERT\s+OR\s+(REPLACE|IGNORE)\s+INTO\s+(\w+)", re.IGNORECASE)


def translate(sql: str, columns: Any = None, *, params: bool = True) -> str:
    """DuckDB SQL -> PostgreSQL SQL for the constructs above (``%s`` SQL is left alone; without
    ``params`` psycopg sends the text as it is, so nothing is escaped)."""
    if params and "%s" not in sql and "?" in sql:
        sql = _qmarks(sql)
    m = _OR.match(sql)
    if m:
        how, table = m.group(1).upper(), m.group(2)
        sql = sql[: m.start()] + f"INSERT INTO {table}" + sql[m.end():]
        if how == "IGNORE":
            sql += " ON CONFLICT DO NOTHING"
        else:
            keys = UPSERT_KEYS.get(table)
            if keys is None:
                raise KeyError(table)
            cols = [c for c in (columns or ()) if c not in keys]
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
            sql += f" ON CONFLICT ({', '.join(keys)}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")
    return sql


def _qmarks(sql: str) -> str:
    """``?`` outside string literals -> ``%s``; a literal ``%`` is doubled for psycopg."""
    out, quoted = [], False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "?" and not quoted:
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Result:
    """A psycopg cursor with DuckDB's ``.df()``."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def df(self):  # noqa: ANN201 - pandas.DataFrame
        import pandas as pd

        desc = self._cur.description or []
        df = pd.DataFrame(self._cur.fetchall(), columns=[d.name for d in desc])
        for d in desc:  # DuckDB gives a DATE column as datetime64, psycopg as date objects
            if d.type_code == _DATE_OID:
                df[d.name] = pd.to_datetime(df[d.name])
        return df

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def __iter__(self):  # noqa: ANN204
        return iter(self._cur)


class Connection:
    """A pooled psycopg connection that also takes DuckDB-dialect statements."""

    is_postgres = True  # what SQL that differs by dialect checks (ledger.py)

    def __init__(self, con: Any) -> None:
        self._con = con

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        columns = None
        if _OR.match(sql):
            columns = _columns_of(self._con, _OR.match(sql).group(2))
        return Result(self._con.execute(translate(sql, columns, params=params is not None), params))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _columns_of(con: Any, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'fourhosts' "
        "AND table_name = %s ORDER BY ordinal_position", [table]).fetchall()]
