"""Pure rendering: HTML and plain text for everything a run shows. No IPython here.

Everything that comes from a model, a tool, a source or the question is untrusted. It reaches
HTML only through ``esc`` (escaped text) or ``markdown_html`` (Markdown rendered with raw HTML
disabled, then sanitised by nh3 with an allow-list). Plain text drops terminal control
sequences. The cell view (jupyter/view.py), ``Answer._repr_mimebundle_`` and stored-run replay
all compose the same pieces, so a run looks the same live, saved and shown again.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, Union

from .memory.origins import display_origin
from .paradigms import HOSTS, LAYER_LABELS, PROFILES, HostParadigm, Layer

if TYPE_CHECKING:
    from .answer import Answer, ToolCallRecord
    from .classifier import Classification
    from .events import Source

PREVIEW_CHARS = 2000  # longest tool result / argument text shown in a card
BAR_WIDTH = 40  # characters in the text/plain host bar
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")

STAGE_LABELS: dict[str, tuple[str, str]] = {
    "classify": ("🧭", "Classifying the question"),
    "model": ("✍️", "Writing the answer"),
    **{layer.value: label for layer, label in LAYER_LABELS.items()},
}
TOOL_STATES: dict[str, tuple[str, str]] = {  # state -> (badge text, colour)
    "receiving": ("receiving", "#6B7280"),
    "running": ("running", "#2563EB"),
    "done": ("done", "#16A34A"),
    "failed": ("failed", "#DC2626"),
    "circuit_open": ("circuit open", "#B45309"),
}
OFFLINE_NOTE = (
    "Offline: extractive answer composed from your memory store, not written by a language model."
)

# -- primitives -----------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def plain(value: Any) -> str:
    """Text for text/plain: untrusted text minus terminal escape and control characters."""
    return _CONTROL.sub("", str(value))


def _color(host: HostParadigm) -> str:
    c = PROFILES[host].color
    return c if _COLOR.match(c) else "#6B7280"


def _truncate(text: str, limit: int = PREVIEW_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit:,} more characters)"


_md = None
# CommonMark (markdown-it's own preset, minus raw HTML) plus tables and strikethrough.
_MARKDOWN_RULES = [
    "blockquote", "code", "fence", "heading", "hr", "lheading", "list", "paragraph", "reference",
    "autolink", "backticks", "emphasis", "entity", "escape", "image", "link", "newline",
    "table", "strikethrough",
]  # fmt: skip


def _markdown():  # noqa: ANN202 - a MarkdownIt, imported on first use
    """The Markdown parser: the Rust port of markdown-it when installed (the same HTML, which
    tests check, ~17× faster on a long answer the live view redraws), else markdown-it-py.
    Raw HTML is never a rule, so model text like ``<script>`` stays visible text."""
    global _md
    if _md is None:
        try:
            _md = rust_markdown()
        except ImportError:  # no wheel for this Python (e.g. 3.13): the pure-Python original
            _md = python_markdown()
    return _md


def rust_markdown():  # noqa: ANN201
    from markdown_it_pyrs import MarkdownIt

    return MarkdownIt("zero").enable_many(_MARKDOWN_RULES)


def python_markdown():  # noqa: ANN201
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


_ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del",
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th",
    "td", "sup", "sub",
}  # fmt: skip
_ALLOWED_ATTRS = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}
_cleaner = None


def _clean(html_text: str) -> str:
    global _cleaner
    if _cleaner is None:  # built once: its allow-lists are not re-read for every redraw
        import nh3

        _cleaner = nh3.Cleaner(
            tags=_ALLOWED_TAGS,
            attributes=_ALLOWED_ATTRS,
            url_schemes={"http", "https", "mailto"},
            url_relative="deny",
            link_rel="noopener noreferrer nofollow",
            filter_style_properties={"text-align"},
        )
    return _cleaner.clean(html_text)


def markdown_html(text: str, *, parser: Any = None) -> str:
    """Untrusted Markdown → safe HTML: no raw HTML, no images, http(s)/mailto links only."""
    return _clean((parser or _markdown()).render(text or ""))


# A blank line before a line that starts in column 0 begins a new top-level block, so an
# answer still streaming can be rendered paragraph by paragraph: finished paragraphs come from
# a cache and only the one being written is parsed again at each redraw (a long answer would
# otherwise cost a whole Markdown parse per redraw). Never split inside a fenced code block.
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n+(?=\S)")
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.M)


def _block_ends(text: str, start: int = 0) -> Iterator[int]:
    """Offsets after ``start`` where ``text`` can be cut between two top-level blocks."""
    for m in _BLOCK_BREAK.finditer(text, start):
        if len(_FENCE.findall(text, start, m.end())) % 2 == 0:  # else inside a fence: go on
            yield m.end()
            start = m.end()


def markdown_segments(text: str) -> list[str]:
    """``text`` cut at blank lines that start a new top-level block, outside code fences."""
    cuts = [0, *_block_ends(text), len(text)]
    return [text[a:b] for a, b in zip(cuts, cuts[1:])]


@lru_cache(maxsize=256)
def _finished_html(text: str) -> str:
    return markdown_html(text)


class _Growing:
    """The answer being streamed: how much of it is settled, and that part's HTML."""

    settled = ""
    html = ""


_growing = _Growing()  # one answer streams at a time; another one simply starts afresh


def streaming_markdown_html(text: str) -> str:
    """``markdown_html`` for text that is still growing: finished blocks are parsed once (all
    those finished since the last call in one go), the last one at every call. Block by block
    can differ from a whole parse in small ways (a list split by a blank line, a link reference
    defined further down), so finished answers use ``markdown_html``."""
    g = _growing
    if not text.startswith(g.settled):
        g.settled = g.html = ""
    start = len(g.settled)
    for start in _block_ends(text, start):  # noqa: B007 - the last cut is what we want
        pass
    if start > len(g.settled):  # the blocks finished since the last call: one parse for all
        g.html += markdown_html(text[len(g.settled) : start])
        g.settled = text[:start]
    return g.html + markdown_html(text[start:])


# -- host bar -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BarData:
    """What the host bar needs, from a Classification or its stored ``to_dict()`` form."""

    probabilities: dict[HostParadigm, float]
    dominant: HostParadigm | None
    primary: HostParadigm | None
    reason: str
    forced: bool = False
    secondary: tuple[HostParadigm, ...] = ()
    blend: tuple[HostParadigm, ...] = ()

    @property
    def is_default(self) -> bool:
        return self.dominant is None and not self.forced

    @classmethod
    def of(cls, c: Classification | Mapping[str, Any] | BarData) -> BarData:
        if isinstance(c, BarData):
            return c
        if isinstance(c, Mapping):
            values = {h.value: h for h in HOSTS}
            raw = c.get("probabilities") or {}
            return cls(
                probabilities={h: float(raw.get(h.value, 0.0)) for h in HOSTS},
                dominant=values.get(c.get("dominant")),  # type: ignore[arg-type]
                primary=values.get(c.get("primary")),  # type: ignore[arg-type]
                reason=str(c.get("reason") or ""),
                forced=bool(c.get("forced")),
                secondary=tuple(values[v] for v in c.get("secondary") or () if v in values),
                blend=tuple(values[v] for v in c.get("blend") or () if v in values),
            )
        return cls(
            probabilities={h: float(c.probabilities.get(h, 0.0)) for h in HOSTS},
            dominant=c.dominant,
            primary=c.primary,
            reason=c.reason,
            forced=bool(getattr(c, "forced", False)),
            secondary=tuple(getattr(c, "secondary", ()) or ()),
            blend=tuple(getattr(c, "blend", ()) or ()),
        )


def shares(probabilities: Mapping[HostParadigm, float]) -> dict[HostParadigm, float]:
    """Probabilities in host order, clipped at 0 and normalised to sum to 1 (uniform if none)."""
    clipped = {h: max(0.0, float(probabilities.get(h, 0.0))) for h in HOSTS}
    total = sum(clipped.values())
    if total <= 0:
        return {h: 1 / len(HOSTS) for h in HOSTS}
    return {h: v / total for h, v in clipped.items()}


def percentages(probabilities: Mapping[HostParadigm, float]) -> dict[HostParadigm, int]:
    """Whole percentages in host order, rounded as the classifier's own reason and summary
    round them (so the legend never contradicts the reason line beside it)."""
    return {h: round(v * 100) for h, v in shares(probabilities).items()}


def _bar_reason(b: BarData) -> str:
    """The line under the bar; when no host is dominant it says so and why (never silent)."""
    lines = []
    who = PROFILES[b.primary].label if b.primary else "?"
    if b.is_default:
        lines.append(f"No dominant host: answering as {who} by default — {b.reason}")
    elif b.reason:
        lines.append(f"Answering as {who} — {b.reason}")
    if b.blend:
        lines.append("Blend: " + " + ".join(PROFILES[h].label for h in b.blend))
    elif b.secondary:
        lines.append("Secondary: " + ", ".join(PROFILES[h].label for h in b.secondary))
    return ". ".join(lines)


def host_bar_html(c: Classification | Mapping[str, Any] | BarData) -> str:
    b = BarData.of(c)
    share = shares(b.probabilities)
    pct = percentages(b.probabilities)
    segs, legend = [], []
    for h in HOSTS:
        p = PROFILES[h]
        title = esc(f"{p.label} {pct[h]}%")
        if share[h] > 0.0005:
            width = f"{share[h] * 100:.1f}%"
            segs.append(f'<div title="{title}" style="width:{width};background:{_color(h)}"></div>')
        mark = ""
        if h == b.dominant:
            mark = " <b>◀ dominant</b>"
        elif h == b.primary:
            mark = " <b>◀ answering</b>"
        weight = "font-weight:600;" if h in (b.dominant, b.primary) else ""
        legend.append(
            f'<span style="margin-right:14px;white-space:nowrap;{weight}">'
            f'<span style="display:inline-block;width:10px;height:10px;border-radius:2px;'
            f'background:{_color(h)};margin-right:4px"></span>'
            f"{esc(p.emoji)} {esc(p.label)} {pct[h]}%{mark}</span>"
        )
    reason = _bar_reason(b)
    reason_html = (
        f'<div style="font-size:0.85em;opacity:0.8;margin-top:2px">{esc(reason)}</div>'
        if reason
        else ""
    )
    return (
        '<div class="fh-hostbar" style="margin:4px 0 6px 0">'
        '<div style="display:flex;height:12px;border-radius:4px;overflow:hidden;'
        'background:rgba(127,127,127,0.15)">' + "".join(segs) + "</div>"
        '<div style="font-size:0.9em;margin-top:3px">' + "".join(legend) + "</div>"
        + reason_html
        + "</div>"
    )


def host_bar_text(c: Classification | Mapping[str, Any] | BarData) -> str:
    """A deterministic text bar: initials in proportion, then one line per host."""
    b = BarData.of(c)
    share = shares(b.probabilities)
    pct = percentages(b.probabilities)
    # Largest remainder: the cells add up to exactly BAR_WIDTH; ties go in host order.
    exact = {h: share[h] * BAR_WIDTH for h in HOSTS}
    cells = {h: int(exact[h]) for h in HOSTS}
    short = BAR_WIDTH - sum(cells.values())
    for h in sorted(HOSTS, key=lambda h: (cells[h] - exact[h], HOSTS.index(h)))[:short]:
        cells[h] += 1
    bar = "".join(PROFILES[h].label[0] * cells[h] for h in HOSTS)
    lines = [f"Hosts [{bar}]"]
    for h in HOSTS:
        p = PROFILES[h]
        mark = "  ◀ dominant" if h == b.dominant else "  ◀ answering" if h == b.primary else ""
        lines.append(f"  {p.label + ' (' + p.stance + ')':<22}{pct[h]:>4}%{mark}")
    reason = _bar_reason(b)
    if reason:
        lines.append(plain(reason))
    return "\n".join(lines)


# -- stage line -----------------------------------------------------------------------------


def stage_label(stage: str, label: str = "") -> str:
    """Words for a stage (a context layer, "classify" or "model"), led by its emoji."""
    key = stage.value if isinstance(stage, Layer) else str(stage)
    emoji, words = STAGE_LABELS.get(key, ("⏳", key))
    label = label.strip()
    if not label:
        return f"{emoji} {words}"
    # The engine's labels may already carry the emoji; do not print it twice.
    return label if not label[0].isalnum() else f"{emoji} {label}"


def stage_html(
    stage: str | None, label: str = "", *, done: bool = False, failed: bool = False
) -> str:
    if failed:
        text = "❌ Run failed"
    elif done:
        text = "✅ Done"
    elif stage:
        text = stage_label(stage, label) + "…"
    else:
        text = "⏳ Starting…"
    style = "font-size:0.9em;opacity:0.85;margin:2px 0"
    return f'<div class="fh-stage" style="{style}">{esc(text)}</div>'


def stage_text(
    stage: str | None, label: str = "", *, done: bool = False, failed: bool = False
) -> str:
    if failed:
        return "Stage: failed"
    if done:
        return "Stage: done"
    if stage:
        return f"Stage: {plain(stage_label(stage, label))}…"
    return "Stage: starting…"


# -- tool cards -----------------------------------------------------------------------------


@dataclass
class ToolCard:
    """The state of one tool call as the cell shows it (mutated by the view as events arrive)."""

    call_id: str
    name: str
    index: int = 0
    round: int = 0
    state: str = "receiving"  # receiving | running | done | failed | circuit_open
    args_parts: list[str] = field(default_factory=list)
    arguments: dict[str, Any] | None = None
    seconds: float | None = None
    result: str = ""
    error: str = ""
    kind: str = ""

    @property
    def args_text(self) -> str:
        if self.arguments is not None:
            try:
                return json.dumps(self.arguments, indent=2, ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                return repr(self.arguments)
        return "".join(self.args_parts)

    @classmethod
    def from_record(cls, rec: ToolCallRecord) -> ToolCard:
        state = rec.status if rec.status in TOOL_STATES else ("failed" if rec.error else "done")
        return cls(
            call_id=rec.call_id,
            name=rec.name,
            round=rec.round,
            state=state,
            arguments=dict(rec.arguments),
            seconds=rec.seconds,
            result=rec.result_preview,
            error=rec.error,
        )


def result_preview(result: Any, preview: str = "") -> str:
    """What a card shows as the result: the tool's preview, else JSON, else repr."""
    if preview:
        return preview
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(result)


def tool_card_html(card: ToolCard) -> str:
    badge, colour = TOOL_STATES.get(card.state, (card.state, "#6B7280"))
    seconds = f" · {card.seconds:.2f} s" if card.seconds is not None else ""
    args = card.args_text
    body = [
        f'<div><span style="font-weight:600">🔧 {esc(card.name)}</span> '
        f'<span style="background:{colour};color:#fff;border-radius:8px;padding:0 7px;'
        f'font-size:0.8em">{esc(badge)}</span>'
        f'<span style="font-size:0.8em;opacity:0.7">{esc(seconds)}</span></div>'
    ]
    if args:
        body.append(
            '<pre style="margin:3px 0;padding:3px 6px;font-size:0.85em;white-space:pre-wrap;'
            f'background:rgba(127,127,127,0.08)">{esc(_truncate(args))}</pre>'
        )
    if card.error:
        body.append(
            f'<div style="color:#DC2626;font-size:0.9em">{esc(card.kind or "error")}: '
            f"{esc(_truncate(card.error))}</div>"
        )
    if card.result:
        body.append(
            '<details><summary style="cursor:pointer;font-size:0.85em">Result</summary>'
            '<pre style="margin:3px 0;padding:3px 6px;font-size:0.85em;white-space:pre-wrap;'
            f'background:rgba(127,127,127,0.08)">{esc(_truncate(card.result))}</pre></details>'
        )
    return (
        f'<div class="fh-tool fh-tool-{esc(card.state)}" style="border:1px solid '
        f"rgba(127,127,127,0.35);border-left:4px solid {colour};border-radius:4px;"
        f'padding:4px 8px;margin:6px 0">' + "".join(body) + "</div>"
    )


def tool_card_text(card: ToolCard) -> str:
    badge = TOOL_STATES.get(card.state, (card.state, ""))[0]
    seconds = f", {card.seconds:.2f} s" if card.seconds is not None else ""
    args = " ".join(card.args_text.split())
    line = f"[tool {plain(card.name)}: {badge}{seconds}] {plain(_truncate(args, 200))}".rstrip()
    if card.error:
        line += f"\n  {plain(card.kind or 'error')}: {plain(_truncate(card.error, 300))}"
    elif card.result:
        line += f"\n  → {plain(_truncate(' '.join(card.result.split()), 200))}"
    return line


# -- the model's reasoning summary -----------------------------------------------------------


def thinking_html(text: str, *, open_: bool = False) -> str:
    """The reasoning summary as a collapsible "Thinking" block, escaped (never Markdown-rendered
    into the answer's styles, never mixed into the answer)."""
    if not text.strip():
        return ""
    return (
        f'<details class="fh-thinking"{" open" if open_ else ""} style="margin:4px 0">'
        '<summary style="cursor:pointer;font-size:0.85em;opacity:0.75">💭 Thinking</summary>'
        '<div style="white-space:pre-wrap;font-size:0.85em;opacity:0.7;padding:2px 8px;'
        f'border-left:2px solid rgba(127,127,127,0.35)">{esc(text.strip())}</div></details>'
    )


def thinking_text(text: str) -> str:
    if not text.strip():
        return ""
    return "Thinking:\n" + "\n".join(f"  {line}" if line.strip() else "" for line in plain(text).strip().splitlines())


# -- sources, notices, errors ----------------------------------------------------------------


_LINK = re.compile(r"^https?://[^\s/?#\\]+[^\s\\]*$", re.I)  # http(s), a host, no spaces


def _origin_html(origin: str) -> str:
    """A link only for an http(s) URL (never ``javascript:``, ``data:`` …); anything else as code."""
    if _LINK.match(origin):
        return (
            f'<a href="{esc(origin)}" target="_blank" rel="noopener noreferrer nofollow">'
            f"{esc(origin)}</a>"
        )
    return f"<code>{esc(display_origin(origin))}</code>"


def _date_suffix(s: Source) -> str:
    return f" · {s.date}" if getattr(s, "date", "") else ""


def sources_html(sources: Sequence[Source]) -> str:
    if not sources:
        return ""
    items = []
    for s in sources:
        origin = f" — {_origin_html(s.origin)}" if s.origin else ""
        reasons = (
            f'<div style="font-size:0.85em;opacity:0.75">{esc("; ".join(s.reasons))}</div>'
            if s.reasons
            else ""
        )
        date = f'<span style="opacity:0.75">{esc(_date_suffix(s))}</span>' if s.date else ""
        items.append(f'<li value="{int(s.n)}"><b>{esc(s.title)}</b>{origin}{date}{reasons}</li>')
    return (
        '<div class="fh-sources" style="margin-top:8px"><div style="font-weight:600">Sources</div>'
        '<ol style="margin:2px 0">' + "".join(items) + "</ol></div>"
    )


def sources_text(sources: Sequence[Source]) -> str:
    if not sources:
        return ""
    lines = ["Sources:"]
    for s in sources:
        origin = f" — {plain(display_origin(s.origin))}" if s.origin else ""
        lines.append(f"  [{s.n}] {plain(s.title)}{origin}{plain(_date_suffix(s))}")
        if s.reasons:
            lines.append(f"      {plain('; '.join(s.reasons))}")
    return "\n".join(lines)


Notice = Union[str, tuple[str, str]]  # message, or (level, message)


def _notice_parts(n: Notice) -> tuple[str, str]:
    return (n[0], n[1]) if isinstance(n, tuple) else ("info", n)


def notices_html(notices: Iterable[Notice], *, offline: bool = False) -> str:
    out = []
    if offline:
        out.append(
            '<div class="fh-offline" style="font-size:0.85em;margin:4px 0">'
            '<span style="background:#6B7280;color:#fff;border-radius:8px;padding:0 7px">'
            f"offline · extractive</span> {esc(OFFLINE_NOTE)}</div>"
        )
    for n in notices:
        level, msg = _notice_parts(n)
        icon = "⚠️" if level == "warning" else "ℹ️"
        out.append(
            f'<div class="fh-notice" style="font-size:0.9em;margin:2px 0">{icon} {esc(msg)}</div>'
        )
    return "".join(out)


def notices_text(notices: Iterable[Notice], *, offline: bool = False) -> str:
    lines = [f"[offline · extractive] {OFFLINE_NOTE}"] if offline else []
    for n in notices:
        level, msg = _notice_parts(n)
        lines.append(f"{'Warning' if level == 'warning' else 'Note'}: {plain(msg)}")
    return "\n".join(lines)


def error_html(message: str, kind: str = "") -> str:
    what = f" ({esc(kind)})" if kind else ""
    return (
        '<div class="fh-error" style="border:1px solid #DC2626;border-radius:4px;padding:4px 8px;'
        f'margin:6px 0;color:#DC2626">❌ <b>Run failed{what}</b>: {esc(message)}</div>'
    )


def error_text(message: str, kind: str = "") -> str:
    what = f" ({plain(kind)})" if kind else ""
    return f"Run failed{what}: {plain(message)}"


# -- whole run ------------------------------------------------------------------------------

Block = Union[str, ToolCard]  # answer text, or a tool card, in the order they happened


def footer_text(
    *, run_id: str = "", provider: str = "", model: str = "", usage: Any = None,
    seconds: float | None = None,
) -> str:  # fmt: skip
    parts = []
    if provider or model:
        parts.append(" · ".join(p for p in (provider, model) if p))
    if usage is not None and getattr(usage, "total_tokens", 0):
        parts.append(f"{usage.total_tokens:,} tokens")
        cost = getattr(usage, "cost_usd", None)
        if cost is not None:  # None: price unknown, so no figure rather than a false "$0"
            parts.append(f"${cost:.4f}" if cost == 0 or cost >= 0.0001 else "<$0.0001")
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    if run_id:
        parts.append(f"run {run_id}")
    return " · ".join(plain(p) for p in parts)


def run_html(
    *,
    classification: Any = None,
    stage: str | None = None,
    stage_words: str = "",
    done: bool = False,
    blocks: Sequence[Block] = (),
    sources: Sequence[Source] = (),
    notices: Sequence[Notice] = (),
    offline: bool = False,
    error: tuple[str, str] | None = None,  # (message, kind)
    footer: str = "",
    thinking: str = "",  # the model's reasoning summary, shown above the answer
    extras: Sequence[Any] = (),  # pieces that render themselves (to_html / to_text), after the answer
) -> str:
    parts = ['<div class="fh-run">']
    if classification is not None:
        parts.append(host_bar_html(classification))
    parts.append(stage_html(stage, stage_words, done=done, failed=error is not None))
    live = not done and error is None
    # Open while the model is still thinking (nothing answered yet), folded away after.
    parts.append(thinking_html(thinking, open_=live and not any(isinstance(b, str) and b for b in blocks)))
    for i, block in enumerate(blocks):
        if isinstance(block, ToolCard):
            parts.append(tool_card_html(block))
        elif block:  # while streaming, only the last block still grows; the others are final
            html = streaming_markdown_html(block) if live and i == len(blocks) - 1 else _finished_html(block)
            parts.append(f'<div class="fh-answer">{html}</div>')
    if error is not None:
        parts.append(error_html(*error))
    parts.extend(x.to_html() for x in extras)
    parts.append(sources_html(sources))
    parts.append(notices_html(notices, offline=offline))
    if footer:
        parts.append(f'<div style="font-size:0.8em;opacity:0.6;margin-top:4px">{esc(footer)}</div>')
    parts.append("</div>")
    return "".join(parts)


def run_text(
    *,
    classification: Any = None,
    stage: str | None = None,
    stage_words: str = "",
    done: bool = False,
    blocks: Sequence[Block] = (),
    sources: Sequence[Source] = (),
    notices: Sequence[Notice] = (),
    offline: bool = False,
    error: tuple[str, str] | None = None,
    footer: str = "",
    thinking: str = "",
    extras: Sequence[Any] = (),
) -> str:
    parts = []
    if classification is not None:
        parts.append(host_bar_text(classification))
    if not done:
        parts.append(stage_text(stage, stage_words, failed=error is not None))
    if thinking.strip():
        parts.append(thinking_text(thinking))
    for block in blocks:
        if isinstance(block, ToolCard):
            parts.append(tool_card_text(block))
        elif block:
            parts.append(plain(block).strip())
    if error is not None:
        parts.append(error_text(*error))
    parts.extend(t for t in (x.to_text() for x in extras) if t)
    for extra in (sources_text(sources), notices_text(notices, offline=offline), footer):
        if extra:
            parts.append(extra)
    return "\n\n".join(parts)


# -- the Answer object ----------------------------------------------------------------------


def _answer_parts(answer: Answer) -> dict[str, Any]:
    blocks: list[Block] = [ToolCard.from_record(r) for r in answer.tool_calls]
    if answer.text:
        blocks.append(answer.text)
    return dict(
        classification=answer.classification,
        done=True,
        blocks=blocks,
        sources=answer.sources,
        notices=list(answer.notices),
        offline=answer.offline,
        extras=_evaluation_extras(answer),
        footer=footer_text(
            run_id=answer.run_id, provider=answer.provider, model=answer.model, usage=answer.usage,
            seconds=answer.timings.get("total") if answer.timings else None,
        ),  # fmt: skip
    )


def _evaluation_extras(answer: Answer) -> tuple[Any, ...]:
    if getattr(answer, "evaluation", None) is None:
        return ()
    from .quality.panel import QualityPanel

    return (QualityPanel(evaluations=[("answer", answer.evaluation.to_dict())]),)


def answer_html(answer: Answer) -> str:
    return run_html(**_answer_parts(answer))


def answer_text(answer: Answer) -> str:
    return run_text(**_answer_parts(answer))


def _md_inline(text: str) -> str:
    """Escape Markdown/HTML specials in a one-line title so it cannot become a link or tag."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", " ".join(str(text).split()))


def answer_markdown(answer: Answer) -> str:
    """The answer as a Markdown document (question, host mix, answer, sources)."""
    c = answer.classification
    pct = percentages(BarData.of(c).probabilities)
    mix = " · ".join(f"{PROFILES[h].label} {pct[h]}%" for h in HOSTS)
    lines = [
        f"## {_md_inline(answer.question)}",
        "",
        f"*Answered as {PROFILES[c.primary].label} ({PROFILES[c.primary].stance}) — {mix}*",
        "",
    ]
    if answer.offline:
        lines += [f"> {OFFLINE_NOTE}", ""]
    lines += [answer.text.strip(), ""]
    if answer.sources:
        lines += ["### Sources", ""]
        for s in answer.sources:
            origin = f" — `{display_origin(s.origin).replace('`', '')}`" if s.origin else ""
            lines.append(f"{s.n}. {_md_inline(s.title)}{origin}{_md_inline(_date_suffix(s))}")
        lines.append("")
    return "\n".join(lines)
