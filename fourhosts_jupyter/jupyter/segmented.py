"""A live cell view that sends each finished piece once: bytes to the browser stay linear.

``CellView`` redraws the whole run through one handle, so a stream sends the run's HTML again
at every redraw (428 kB for a 12 kB answer over 7 s; quadratic in the answer's length).
``SegmentedCellView`` splits the live cell into outputs:

- a header handle (host bar, stage line), redrawn only when it changes;
- finished pieces — a tool card that has finished, the text before it, each finished Markdown
  block of the growing answer — sent once, as outputs of their own;
- one tail handle for what still grows (the last block, a running tool card); when part of the
  tail finishes, the tail's last redraw *becomes* that finished piece and a new tail opens below;
- at the end, one output with the error, sources, notices and footer.

Redraws stay coalesced (≤ ``max_rate`` a second for the whole cell), and the tail (with the
pieces that finished since it was last sent, as ONE output) goes at most every ``TAIL_S``
seconds: every message also costs a ~0.55 kB envelope, so at 10 a second a 7-second, 12 kB
stream sent 4.0× its final output on the wire (2.24× as content); at ≤ 5 a second 2.9× (1.73×).
A slower stream waits (≤ ``TAIL_MAX_S``) for ``MIN_NEW`` characters: over 28 s, 5.8× → 3.4× (1.9×).
Final mode (nbval,
``FOURHOSTS_LIVE=0``) is ``CellView``'s: one display at the end.
"""

from __future__ import annotations

from typing import Any

from ..render import (
    ToolCard,
    _finished_html,
    error_html,
    error_text,
    esc,
    footer_text,
    host_bar_html,
    host_bar_text,
    markdown_html,
    markdown_segments,
    notices_html,
    notices_text,
    plain,
    sources_html,
    sources_text,
    stage_html,
    stage_text,
    thinking_html,
    tool_card_html,
    tool_card_text,
)
from .view import CellView

_FINAL_CARD = ("done", "failed", "circuit_open")
TAIL_S = 0.2  # seconds at least between the tail's redraws (≤ 5 a second)
TAIL_MAX_S, MIN_NEW = 0.5, 250  # … and at most, unless MIN_NEW characters came (≥ 2 a second)


class Piece:
    """One output's content: HTML and text/plain, nothing else."""

    def __init__(self, html: str, text: str) -> None:
        self.html, self.text = html, text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}

    def size(self) -> int:
        return len(self.html.encode()) + len(self.text.encode())


def _text_piece(text: str, *, growing: bool) -> Piece:
    if growing:
        parts = markdown_segments(text)
        html = "".join(_finished_html(p) for p in parts[:-1]) + markdown_html(parts[-1] if parts else "")
    else:
        html = markdown_html(text)
    return Piece(f'<div class="fh-answer">{html}</div>', plain(text).strip())


def _card_piece(card: ToolCard) -> Piece:
    return Piece(tool_card_html(card), tool_card_text(card))


class Splitter:
    """Splits a run's blocks into pieces that have finished since the last call and the tail
    that still grows. Shared by this view and the live compare grid (one per panel)."""

    def __init__(self) -> None:
        self.block = 0  # first block not sent as finished
        self.offset = 0  # characters of that (text) block already sent as finished

    def split(self, blocks: list[Any], *, final: bool) -> tuple[list[Piece], Piece | None]:
        """Pieces finished since the last call (marked sent), and the tail (None when empty).
        ``final``: the run is over, everything is finished."""
        finished: list[Piece] = []
        tail: list[Piece] = []
        last = len(blocks) - 1
        i = self.block
        while i <= last:
            b = blocks[i]
            if isinstance(b, ToolCard):
                if (final or b.state in _FINAL_CARD) and not tail:
                    finished.append(_card_piece(b))
                    self.block, self.offset = i + 1, 0
                else:
                    tail.append(_card_piece(b))
            else:
                text = "".join(b)[self.offset :]
                if (final or i < last) and not tail:
                    if text.strip():
                        finished.append(_text_piece(text, growing=False))
                    self.block, self.offset = i + 1, 0
                else:
                    parts = markdown_segments(text)
                    done_text = "".join(parts[:-1])
                    if done_text.strip() and not tail:
                        finished.append(_text_piece(done_text, growing=False))
                        self.offset += len(done_text)
                        text = parts[-1]
                    if text.strip():
                        tail.append(_text_piece(text, growing=True))
            i += 1
        if not tail:
            return finished, None
        return finished, Piece("".join(p.html for p in tail), "\n\n".join(p.text for p in tail))


class SegmentedCellView(CellView):
    """``CellView`` whose live mode sends finished pieces once (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bytes_sent = 0
        self.redraws = 0  # coalesced redraw rounds (each may send several outputs)
        self.tail_redraws = 0  # rounds that sent the tail (and the pieces finished since)
        self.outputs = 0  # display outputs created (live)
        self._header: Any = None
        self._header_key: tuple[str, str] | None = None
        self._tail: Any = None
        self._splitter = Splitter()
        self._footer_sent = False
        self._tail_at = float("-inf")
        self._tail_chars = 0
        self._sizes: list[int] = []
        self._handles: list[Any] = []

    # -- sending -------------------------------------------------------------------------------

    def _out(self, piece: Piece, slot: int | None = None, *, keep: bool = False) -> int | None:
        """Send ``piece``: redraw output ``slot`` if given, else a new output (kept as a slot
        that can be redrawn if ``keep``). Returns the slot."""
        display = self._display
        if display is None:
            from IPython.display import display
        size = piece.size()
        self.bytes_sent += size
        self.updates += 1
        if slot is not None:
            self._handles[slot].update(piece)
            self._sizes[slot] = size
            return slot
        self.outputs += 1
        self._sizes.append(size)
        self._handles.append(display(piece, display_id=True) if keep else display(piece))
        return len(self._sizes) - 1 if keep else None

    def final_size(self) -> int:
        """Bytes of what the cell shows at the end: every output's last content."""
        return sum(self._sizes)

    def _show(self) -> None:
        if not self.live:
            super()._show()
            return
        self.redraws += 1
        s = self.state
        done = s.done
        # header: bar + stage line (+ reasoning), only when it changed
        thinking = "".join(s.thinking)
        html = ('<div class="fh-run">' + (host_bar_html(s.classification) if s.classification is not None else "")
                + stage_html(s.stage, s.stage_words, done=s.answer is not None, failed=s.error is not None)
                + thinking_html(thinking, open_=not done and not s.text) + "</div>")  # fmt: skip
        text = "\n\n".join(x for x in (
            host_bar_text(s.classification) if s.classification is not None else "",
            "" if done else stage_text(s.stage, s.stage_words, failed=s.error is not None),
        ) if x)  # fmt: skip
        if (html, text) != self._header_key:
            self._header = self._out(Piece(html, text), self._header, keep=True)
            self._header_key = (html, text)
        # finished pieces (one output for all that finished since the last), then the tail: at
        # most every TAIL_S seconds (each message costs its envelope too), unless the run ended
        now = self.clock()
        since, chars = now - self._tail_at, len(s.text)
        # a slow stream waits for MIN_NEW characters (up to TAIL_MAX_S): fewer envelopes a byte
        waiting = not (done or (since >= TAIL_S and chars - self._tail_chars >= MIN_NEW) or since >= TAIL_MAX_S)
        if not waiting:
            finished, tail = self._split(final=done)
            if finished or tail is not None:
                self._tail_at = now  # the wait starts from what was sent, not from an empty round
                self._tail_chars = chars
                self.tail_redraws += 1
            if finished:
                piece = Piece("".join(p.html for p in finished), "\n\n".join(p.text for p in finished))
                self._out(piece, self._tail)  # the tail's last redraw is this finished piece
                self._tail = None
            if tail is not None:
                self._tail = self._out(tail, self._tail, keep=True)
        if done and not self._footer_sent:
            self._footer_sent = True
            self._out(self._footer())
        self._shown = True
        self._dirty = waiting  # the tail waits: a later round draws it
        self._last = now

    def _split(self, *, final: bool) -> tuple[list[Piece], Piece | None]:
        return self._splitter.split(self.state.blocks, final=final)

    def _footer(self) -> Piece:
        s, a = self.state, self.state.answer
        foot = footer_text(run_id=s.run_id, provider=getattr(a, "provider", ""), model=getattr(a, "model", ""),
                           usage=getattr(a, "usage", None) or s.usage, seconds=s.timings.get("total"))  # fmt: skip
        offline = bool(getattr(a, "offline", False))
        html = ((error_html(*s.error) if s.error else "") + sources_html(s.sources)
                + notices_html(s.notices, offline=offline)
                + (f'<div style="font-size:0.8em;opacity:0.6;margin-top:4px">{esc(foot)}</div>' if foot else ""))  # fmt: skip
        text = "\n\n".join(x for x in ((error_text(*s.error) if s.error else ""), sources_text(s.sources),
                                       notices_text(s.notices, offline=offline), foot) if x)  # fmt: skip
        return Piece(f'<div class="fh-run-end">{html}</div>', text)
