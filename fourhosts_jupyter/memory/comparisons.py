"""The run log's record of compositions of runs (a compare grid, a blend): migration m006.

A comparison is one row in ``comparisons``; each of its runs points to it through
``runs.comparison_id``, so ``%research show C_ID`` can draw the whole grid again.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..redact import redact
from .store import Store, utcnow

PREFIX = "c_"  # comparison ids start with this; run ids with "r_"


def save_comparison(
    store: Store,
    comparison_id: str,
    *,
    kind: str,
    question: str,
    hosts: Sequence[str],
    run_ids: Sequence[str],
    summary: dict[str, Any],
) -> None:
    """Record the comparison and link its (already persisted) runs to it, in one transaction."""
    with store.transaction() as con:
        con.execute(
            "INSERT INTO comparisons (id, kind, question, hosts, summary, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [comparison_id, kind, question, json.dumps(list(hosts)), redact(json.dumps(summary)), utcnow()],
        )
        for run_id in run_ids:
            con.execute("UPDATE runs SET comparison_id = ? WHERE id = ?", [comparison_id, run_id])


def get_comparison(store: Store, comparison_id: str) -> dict[str, Any] | None:
    """The comparison (or the one whose id starts with ``comparison_id``) with its runs, each as
    ``Store.get_run`` gives it, in panel order; None when there is none."""
    with store.connect() as con:
        rows = con.execute(
            "SELECT id, kind, question, hosts, summary, created_at FROM comparisons "
            "WHERE starts_with(id, ?) ORDER BY id = ? DESC, created_at DESC LIMIT 2",
            [comparison_id, comparison_id],
        ).fetchall()
        if not rows:
            return None
        if len(rows) > 1 and rows[0][0] != comparison_id:
            from ..errors import ConfigError

            raise ConfigError(
                f"comparison id {comparison_id!r} is ambiguous: give more of the id"
            )
        cid, kind, question, hosts, summary, created = rows[0]
        run_ids = [
            r[0]
            for r in con.execute(
                "SELECT id FROM runs WHERE comparison_id = ? ORDER BY started_at", [cid]
            ).fetchall()
        ]
    runs = [r for r in (store.get_run(i) for i in run_ids) if r is not None]
    order = _json(hosts) or []

    def panel(run: dict[str, Any]) -> int:
        host = (run.get("options") or {}).get("paradigm") or run.get("paradigm")
        return order.index(host) if host in order else len(order)

    runs.sort(key=panel)
    return {
        "id": cid,
        "kind": kind,
        "question": question,
        "hosts": order,
        "summary": _json(summary) or {},
        "created_at": created,
        "runs": runs,
    }


def _json(value: Any) -> Any:
    """A JSON column's value: DuckDB gives its text, PostgreSQL (JSONB) the object."""
    return json.loads(value) if isinstance(value, str) else value
