"""The compare grid's footer, drawn from ``Comparison.summary()`` (live or as stored): sources
shared by several hosts vs used by one (a small matrix), length, tokens, cost and time per
host, the terms each host stressed that the others did not, and the optional synthesis."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..paradigms import PROFILES, HostParadigm
from ..render import _color, esc, markdown_html, plain

_CELL = "padding:1px 8px;text-align:left"


def _cost(value: Any) -> str:
    if value is None:
        return "—"
    return f"${value:.4f}" if value == 0 or value >= 0.0001 else "<$0.0001"


def _matrix_rows(summary: Mapping[str, Any], hosts: Sequence[HostParadigm]) -> list[tuple[str, list[bool]]]:
    rows = []
    for s in summary.get("shared_sources") or ():
        used = set(s.get("hosts") or ())
        rows.append((str(s.get("title") or s.get("origin") or "?"), [h.value in used for h in hosts]))
    for h in hosts:
        for s in (summary.get("only_sources") or {}).get(h.value, ()):
            rows.append((str(s.get("title") or s.get("origin") or "?"), [x == h for x in hosts]))
    return rows


def footer_html(summary: Mapping[str, Any], hosts: Sequence[HostParadigm]) -> str:
    per_host = {r["host"]: r for r in summary.get("per_host") or ()}
    head = "".join(
        f'<th style="{_CELL};color:{_color(h)}">{esc(PROFILES[h].emoji)} {esc(PROFILES[h].label)}</th>'
        for h in hosts
    )
    figures = []
    for label, key, fmt in (
        ("status", "status", str),
        ("length (chars)", "chars", lambda v: f"{int(v):,}"),
        ("tokens", "tokens", lambda v: f"{int(v):,}"),
        ("cost", "cost_usd", _cost),
        ("time", "seconds", lambda v: f"{float(v):.2f} s"),
        ("sources", "sources", str),
        ("stressed", "distinctive", lambda v: ", ".join(v) or "—"),
    ):
        cells = "".join(
            f'<td style="{_CELL}">{esc(fmt(per_host[h.value].get(key)) if h.value in per_host else "—")}</td>'
            for h in hosts
        )
        figures.append(f'<tr><th style="{_CELL}">{esc(label)}</th>{cells}</tr>')
    rows = _matrix_rows(summary, hosts)
    matrix = ""
    if rows:
        body = "".join(
            f'<tr><td style="{_CELL}">{esc(title)}</td>'
            + "".join(f'<td style="{_CELL}">{"●" if u else ""}</td>' for u in used)
            + f'<td style="{_CELL}">{"shared" if sum(used) > 1 else "only one"}</td></tr>'
            for title, used in rows
        )
        matrix = (
            '<div style="font-weight:600;margin-top:6px">Sources: shared by several hosts vs used by one</div>'
            f'<table class="fh-compare-sources"><tr><th style="{_CELL}">source</th>{head}'
            f'<th style="{_CELL}"></th></tr>{body}</table>'
        )
    synthesis = summary.get("synthesis") or ""
    synth = (
        '<div style="font-weight:600;margin-top:6px">Where the hosts agree / disagree</div>'
        f'<div class="fh-compare-synthesis">{markdown_html(synthesis)}</div>'
        if synthesis
        else ""
    )
    notes = "".join(f'<div style="font-size:0.85em;opacity:0.75">{esc(n)}</div>' for n in summary.get("notes") or ())
    secs = summary.get("seconds")
    wall = f" · all hosts in {float(secs):.2f} s" if secs is not None else ""
    return (
        '<div class="fh-compare-footer" style="margin-top:8px;font-size:0.9em">'
        f'<div style="font-weight:600">Comparison {esc(summary.get("comparison_id", ""))}{esc(wall)}</div>'
        f'<table class="fh-compare-figures"><tr><th style="{_CELL}"></th>{head}</tr>{"".join(figures)}</table>'
        f"{matrix}{synth}{notes}</div>"
    )


def footer_text(summary: Mapping[str, Any], hosts: Sequence[HostParadigm]) -> str:
    per_host = {r["host"]: r for r in summary.get("per_host") or ()}
    lines = [f"Comparison {plain(summary.get('comparison_id', ''))}"]
    for h in hosts:
        r = per_host.get(h.value)
        if r is None:
            continue
        tokens = f", {int(r['tokens']):,} tokens" if r.get("tokens") else ""
        lines.append(
            f"  {PROFILES[h].label:<8} {r['status']:<7} {int(r['chars']):>6,} chars{tokens}, "
            f"{float(r['seconds']):.2f} s, {r['sources']} sources; stressed: "
            f"{plain(', '.join(r.get('distinctive') or ()) or '—')}"
        )
    rows = _matrix_rows(summary, hosts)
    if rows:
        initials = "".join(PROFILES[h].label[0] for h in hosts)
        lines.append(f"Sources ({initials}):")
        for title, used in rows:
            marks = "".join(PROFILES[h].label[0] if u else "." for h, u in zip(hosts, used))
            lines.append(f"  {marks}  {plain(title)}")
    lines += [plain(n) for n in summary.get("notes") or ()]
    if summary.get("synthesis"):
        lines += ["Where the hosts agree / disagree:", plain(summary["synthesis"]).strip()]
    return "\n".join(lines)
