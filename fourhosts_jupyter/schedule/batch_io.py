"""Batch input and output files: CSV, Parquet or JSONL, chosen by the file's extension.

Everything is checked before a batch starts (the file, its type, the column, the output
type), so a mistake costs nothing and nothing is stored.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl"}
_KNOWN = ".csv, .parquet or .jsonl"


def file_format(path: str | os.PathLike[str], what: str = "input") -> str:
    ext = Path(path).suffix.lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        shown = f"'{ext}'" if ext else "no extension"
        raise ConfigError(f"unknown {what} file type ({shown}) for {path}: use {_KNOWN}")
    return fmt


def read_table(path: str | os.PathLike[str]):  # noqa: ANN201 - pandas.DataFrame
    fmt = file_format(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no such file: {path}")
    import pandas as pd

    try:
        if fmt == "csv":
            return pd.read_csv(p)
        if fmt == "parquet":
            return pd.read_parquet(p)
        return pd.read_json(p, lines=True)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path} as {fmt.upper()}: {str(exc).splitlines()[0][:200]}") from None
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow parser errors have no common base
        raise ConfigError(f"cannot read {path} as {fmt.upper()}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None


def questions_from(data: Any, column: str | None = None, *, source: str = "") -> list[str]:
    """The questions of a list, a pandas Series, or a DataFrame's ``column``; blank ones refused."""
    where = source or "the input"
    if hasattr(data, "columns"):  # a DataFrame
        if not column:
            if len(data.columns) == 1:
                column = str(data.columns[0])
            else:
                raise ConfigError(f"{where} has several columns ({_columns(data)}): say which holds "
                                  "the questions with column= (--column NAME)")
        if column not in data.columns:
            raise ConfigError(f"{where} has no column {column!r}: its columns are {_columns(data)}; "
                              "pass the right one with --column NAME")
        values = list(data[column])
    elif isinstance(data, str):
        raise ConfigError("give a list of questions (or a DataFrame and column=), not one string")
    else:
        values = list(data)
    out = []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip():
            raise ConfigError(f"{where}: question {i + 1} (row {i + 1}) is empty; remove the row or "
                              "fill it in")
        out.append(str(v).strip())
    if not out:
        raise ConfigError(f"{where} holds no questions")
    return out


def _columns(df: Any) -> str:
    names = [str(c) for c in df.columns]
    return ", ".join(names[:12]) + (" …" if len(names) > 12 else "")


def write_table(df: Any, path: str | os.PathLike[str]) -> None:
    """Write ``df`` by extension; nested cells (probabilities, sources) as JSON text in CSV."""
    fmt = file_format(path, "output")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".part")
    if fmt == "parquet":
        out = df.copy()
        for col in ("probabilities", "sources"):  # mixed/nested objects: JSON text in Parquet too
            if col in out:
                out[col] = [json.dumps(v) if v is not None else None for v in out[col]]
        out.to_parquet(tmp, index=False)
    elif fmt == "csv":
        out = df.copy()
        for col in ("probabilities", "sources"):
            if col in out:
                out[col] = [json.dumps(v) if v is not None else None for v in out[col]]
        out.to_csv(tmp, index=False)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            for rec in df.to_dict(orient="records"):
                rec = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in rec.items()}
                fh.write(json.dumps(rec, ensure_ascii=False, default=_plain, allow_nan=False) + "\n")
    os.replace(tmp, p)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def check_output(path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        file_format(path, "output")


def source_name(data: Any, path: str | None = None) -> str:
    if path:
        return str(path)
    return "dataframe" if hasattr(data, "columns") else "list"


__all__: Sequence[str] = ("FORMATS", "check_output", "file_format", "questions_from", "read_table",
                          "source_name", "write_table")
