"""The cost ledger: tokens and cost per run, host, model, tool and day, in the store.

One ``model`` row per finished run (its host, provider, model, day, tokens and cost) and one
``tool`` row per tool it called (calls, failures, seconds). The cost is the run's
``cost_usd``, which the provider worked out from the price table (``llm.prices``) for the
usage the server reported: NULL when the price is unknown (a local server, an unlisted model)
— never $0 — while the tokens are still counted. Rows are written in the transaction that
finishes the run (``Store.finish_run``), and migration ``m005_ledger`` fills the table from the
runs already in a store, with the same SQL.

``summary(con, by)`` groups them: by host, model, provider, day or run, the runs, tokens and
cost; by tool, its calls, failures and seconds, and the tokens and cost of the runs that called
it (a run that called two tools counts in both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

GROUPS = ("host", "model", "provider", "day", "tool", "run")

CREATE = """
CREATE TABLE ledger (
    run_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,          -- model | tool
    day DATE NOT NULL,              -- UTC, the day the run finished
    finished_at TIMESTAMP NOT NULL,
    host VARCHAR,
    provider VARCHAR,
    model VARCHAR,
    tool VARCHAR,                   -- tool rows only
    status VARCHAR,                 -- the run's: ok | failed
    calls INTEGER NOT NULL,         -- tool rows: calls of this tool in the run; model rows: 1
    failed INTEGER NOT NULL,        -- tool rows: failed calls; model rows: 1 if the run failed
    seconds DOUBLE,                 -- tool rows: time in the tool
    input_tokens BIGINT NOT NULL,   -- model rows only (0 on tool rows)
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cost_usd DOUBLE                 -- model rows; NULL: price unknown
)
"""

_TOKENS = "coalesce(TRY_CAST(json_extract(r.usage, '$.{0}') AS BIGINT), 0)"
_MODEL_ROWS = f"""
INSERT INTO ledger
SELECT r.id, 'model', CAST(coalesce(r.finished_at, r.started_at) AS DATE),
       coalesce(r.finished_at, r.started_at), r.paradigm, r.provider, r.model, NULL, r.status,
       1, CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END, NULL,
       {_TOKENS.format('prompt_tokens')}, {_TOKENS.format('completion_tokens')},
       {_TOKENS.format('cached_tokens')},
       greatest({_TOKENS.format('total_tokens')},
                {_TOKENS.format('prompt_tokens')} + {_TOKENS.format('completion_tokens')}),
       r.cost_usd
FROM runs r WHERE r.status <> 'running' {{where}}
"""
_TOOL_ROWS = """
INSERT INTO ledger
SELECT r.id, 'tool', CAST(coalesce(r.finished_at, r.started_at) AS DATE),
       coalesce(r.finished_at, r.started_at), r.paradigm, r.provider, r.model,
       json_extract_string(e.payload, '$.name'), r.status,
       count(*), count(*) FILTER (WHERE e.type = 'tool_call_failed'),
       sum(coalesce(TRY_CAST(json_extract(e.payload, '$.seconds') AS DOUBLE), 0)),
       0, 0, 0, 0, NULL
FROM run_events e JOIN runs r ON r.id = e.run_id
WHERE e.type IN ('tool_call_finished', 'tool_call_failed') AND r.status <> 'running' {where}
GROUP BY ALL
"""


# the same rows in PostgreSQL's dialect (a JSON number read as such, else 0 / NULL as above)
def _pg_number(doc: str, key: str, cast: str) -> str:
    return f"(CASE WHEN jsonb_typeof({doc}->'{key}') = 'number' THEN ({doc}->>'{key}')::{cast} END)"


def _pg_tokens(key: str) -> str:
    return f"coalesce({_pg_number('r.usage', key, 'numeric::bigint')}, 0)"


_PG_MODEL_ROWS = f"""
INSERT INTO ledger
SELECT r.id, 'model', CAST(coalesce(r.finished_at, r.started_at) AS DATE),
       coalesce(r.finished_at, r.started_at), r.paradigm, r.provider, r.model, NULL, r.status,
       1, CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END, NULL,
       {_pg_tokens('prompt_tokens')}, {_pg_tokens('completion_tokens')},
       {_pg_tokens('cached_tokens')},
       greatest({_pg_tokens('total_tokens')},
                {_pg_tokens('prompt_tokens')} + {_pg_tokens('completion_tokens')}),
       r.cost_usd
FROM runs r WHERE r.status <> 'running' {{where}}
"""
_PG_TOOL_ROWS = f"""
INSERT INTO ledger
SELECT r.id, 'tool', CAST(coalesce(r.finished_at, r.started_at) AS DATE),
       coalesce(r.finished_at, r.started_at), r.paradigm, r.provider, r.model,
       e.payload->>'name', r.status,
       count(*), count(*) FILTER (WHERE e.type = 'tool_call_failed'),
       sum(coalesce({_pg_number('e.payload', 'seconds', 'float8')}, 0)),
       0, 0, 0, 0, NULL
FROM run_events e JOIN runs r ON r.id = e.run_id
WHERE e.type IN ('tool_call_finished', 'tool_call_failed') AND r.status <> 'running' {{where}}
GROUP BY r.id, r.finished_at, r.started_at, r.paradigm, r.provider, r.model,
         e.payload->>'name', r.status
"""


def fill(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> None:
    """Write the ledger rows of one finished run (or, with no id, of every finished run), on
    either back-end's connection."""
    pg = getattr(con, "is_postgres", False)
    model_rows, tool_rows = (_PG_MODEL_ROWS, _PG_TOOL_ROWS) if pg else (_MODEL_ROWS, _TOOL_ROWS)
    if run_id is None:
        con.execute(model_rows.format(where=""))
        con.execute(tool_rows.format(where=""))
        return
    con.execute("DELETE FROM ledger WHERE run_id = ?", [run_id])  # a run finished twice: once
    con.execute(model_rows.format(where="AND r.id = ?"), [run_id])
    con.execute(tool_rows.format(where="AND r.id = ?"), [run_id])


_KEYS = {"host": "host", "model": "model", "provider": "provider", "day": "day"}
_RUN_TOTALS = """count(*) AS runs, sum(failed)::BIGINT AS failed,
       sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens,
       sum(total_tokens)::BIGINT AS total_tokens, sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE cost_usd IS NULL AND total_tokens > 0) AS unpriced_runs"""


def summary(con: duckdb.DuckDBPyConnection, by: str = "day") -> Any:  # pandas.DataFrame
    """The ledger grouped ``by`` one of GROUPS, as a DataFrame (most expensive first; days in
    order). ``cost_usd`` sums the priced runs; ``unpriced_runs`` counts those without a price."""
    if by not in GROUPS:
        from ..errors import ConfigError

        raise ConfigError(f"cannot group usage by {by!r}: use one of {', '.join(GROUPS)}")
    if by == "run":
        sql = """SELECT run_id, day, host, provider, model, status, input_tokens, output_tokens,
                        total_tokens, cost_usd FROM ledger WHERE kind = 'model' ORDER BY finished_at"""
    elif by == "tool":
        sql = """SELECT t.tool, count(DISTINCT t.run_id) AS runs, sum(t.calls)::BIGINT AS calls,
                        sum(t.failed)::BIGINT AS failed, sum(t.seconds) AS seconds,
                        sum(m.total_tokens)::BIGINT AS total_tokens, sum(m.cost_usd) AS cost_usd
                 FROM ledger t JOIN ledger m ON m.run_id = t.run_id AND m.kind = 'model'
                 WHERE t.kind = 'tool' GROUP BY t.tool
                 ORDER BY calls DESC, t.tool"""
    else:
        key = _KEYS[by]
        order = "day" if by == "day" else "cost_usd DESC NULLS LAST, total_tokens DESC, " + key
        sql = f"""SELECT {key}, {_RUN_TOTALS} FROM ledger WHERE kind = 'model'
                  GROUP BY {key} ORDER BY {order}"""
    return con.execute(sql).df()
