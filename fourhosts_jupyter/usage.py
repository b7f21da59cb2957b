"""Tokens and cost from the ledger (``memory/ledger.py``): a DataFrame, a bar chart, and the
``fourhosts usage`` command (``%research usage`` in a notebook).

``usage(by=…)`` is the DataFrame; ``UsageChart`` shows it as a bar chart (matplotlib, imported
on first draw, drawn without pyplot so no backend or global figure is touched) whose
``text/plain`` is the table itself.
"""

from __future__ import annotations

import argparse
import base64
import io
import math
from typing import Any

from .memory.ledger import GROUPS

DEFAULT_GROUP = "day"
_NO_RUNS = "no finished runs in the ledger yet: research a question first"
_NO_TOOLS = "no tool calls in the ledger yet"


def usage(by: str = DEFAULT_GROUP, *, store: Any = None) -> Any:  # pandas.DataFrame
    """Runs, tokens and cost grouped ``by`` host, model, provider, day, tool or run."""
    from .memory.ledger import summary

    if store is None:
        from .config import Settings
        from .memory.backends import open_store

        store = open_store(Settings.from_env().resolved_store_path())
    with store.connect() as con:
        return summary(con, by)


def measure(df: Any, by: str) -> str:
    """The column the chart draws: USD when any row has a price, else tokens, else runs (for
    tools: calls)."""
    if by == "tool":
        return "calls"
    for column in ("cost_usd", "total_tokens"):
        if float(df[column].fillna(0).sum()) > 0:
            return column
    return "runs" if by != "run" else "total_tokens"  # offline runs: no tokens to draw


class UsageChart:
    """A bar chart of one ``usage()`` table; its text form is the table."""

    def __init__(self, df: Any, by: str) -> None:
        self.df = df
        self.by = by

    @property
    def label_column(self) -> str:
        return "run_id" if self.by == "run" else self.by

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.text()}
        if len(self.df):
            bundle["image/png"] = base64.b64encode(self.png()).decode("ascii")
        return bundle

    def __repr__(self) -> str:
        return self.text()

    def text(self) -> str:
        if not len(self.df):
            return _NO_TOOLS if self.by == "tool" else _NO_RUNS
        return self.df.to_string(index=False)

    def png(self) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        column = measure(self.df, self.by)
        labels = [str(v) if v is not None else "(none)" for v in self.df[self.label_column]]
        raw = list(self.df[column])
        values = [0.0 if _missing(v) else float(v) for v in raw]
        # an unpriced row is "n/a", not a $0 bar
        shown = ["n/a" if _missing(v) else (f"${v:.4g}" if column == "cost_usd" else f"{v:,.0f}") for v in raw]
        fig = Figure(figsize=(6.4, 0.45 * len(labels) + 1.2), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        bars = ax.barh(labels[::-1], values[::-1], color="#4c72b0")
        ax.bar_label(bars, labels=shown[::-1], padding=3, fontsize=8)
        ax.margins(x=0.15)
        ax.set_xlabel({"cost_usd": "cost (USD)", "total_tokens": "tokens"}.get(column, column))
        ax.set_title(f"usage by {self.by}")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def rows(df: Any) -> list[dict[str, Any]]:
    """The table as plain JSON-able rows: NULL → None, dates → ISO 8601, numpy → Python."""
    out = []
    for rec in df.to_dict(orient="records"):
        row = {}
        for key, value in rec.items():
            if _missing(value) or str(value) in ("NaT", "<NA>"):
                value = None
            elif hasattr(value, "isoformat"):
                value = value.isoformat()[:10] if key == "day" else value.isoformat()
            elif hasattr(value, "item"):
                value = value.item()
            row[key] = value
        out.append(row)
    return out


# -- fourhosts usage ------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("usage", help="tokens and cost from the ledger, grouped by host, model, day, …")
    p.add_argument("--by", choices=GROUPS, default=DEFAULT_GROUP,
                   help=f"group by (default {DEFAULT_GROUP})")
    p.add_argument("--json", action="store_true", help="one JSON object per row")
    p.add_argument("--store", metavar="PATH",
                   help="the store: a DuckDB file or postgresql://… (default: $FOURHOSTS_HOME/store.duckdb)")
    p.set_defaults(func=cmd_usage)


def cmd_usage(args: argparse.Namespace) -> int:
    from .config import Settings
    from .memory.backends import is_postgres, open_store
    from .redact import neutralise, terminal_json

    path = Settings.from_env(store_path=args.store).resolved_store_path()
    # reading must not create a store: no file, no runs (a server's store is there to ask)
    exists = is_postgres(path) or path.exists()
    table = rows(usage(args.by, store=open_store(path))) if exists else []
    if args.json:
        for row in table:
            print(terminal_json(row, allow_nan=False))
        return 0
    if not table:
        print(_NO_TOOLS if args.by == "tool" else _NO_RUNS)
        return 0
    import pandas as pd

    print(neutralise(pd.DataFrame(table).to_string(index=False), keep_lines=True))
    return 0
