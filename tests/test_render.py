"""Rendering: untrusted text stays inert, the host bar adds up, every piece has plain text."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from pathlib import Path

import pytest

import fourhosts_jupyter

from fourhosts_jupyter.answer import Answer, ToolCallRecord
from fourhosts_jupyter.classifier import Classification, Effort, QueryType, decide
from fourhosts_jupyter.events import Source, Usage
from fourhosts_jupyter.paradigms import HOSTS, PROFILES, HostParadigm, Phase
from fourhosts_jupyter.render import (
    BAR_WIDTH,
    ToolCard,
    answer_html,
    answer_markdown,
    answer_text,
    host_bar_html,
    host_bar_text,
    markdown_html,
    markdown_segments,
    percentages,
    plain,
    python_markdown,
    run_html,
    run_text,
    rust_markdown,
    sources_html,
    sources_text,
    stage_html,
    stage_text,
    streaming_markdown_html,
    tool_card_html,
    tool_card_text,
)

D, T, B, M = HOSTS
HOSTILE = (
    'Hi <script>alert("x")</script> <img src=x onerror="alert(1)"> '
    "<iframe src='https://evil'></iframe> [click](javascript:alert(1)) "
    "[data](data:text/html;base64,PHNjcmlwdD4=) <a href=\"javascript:alert(2)\">a</a> "
    '<div style="position:fixed">cover</div> <style>body{display:none}</style>'
)


def classification(probs: dict[HostParadigm, float], *, forced: bool = False) -> Classification:
    """A classification decided by the classifier's own rule (``decide``), so the reason line
    and the dominant host a test checks come from the code under test, not from this helper."""
    ranked, dominant, secondary, blend, primary, reason = decide(
        probs, forced=max(HOSTS, key=lambda h: probs[h]) if forced else None
    )
    return Classification(
        question="q",
        probabilities=probs,
        ranked=ranked,
        dominant=dominant,
        secondary=secondary,
        blend=blend,
        primary=primary,
        reason=reason,
        query_type=QueryType.ANALYTICAL,
        phase=Phase.SYNTHESIS,
        effort=Effort.MEDIUM,
        complexity=0.5,
        method="test",
        forced=forced,
    )


class _Audit(HTMLParser):
    """Collects every tag, attribute and link of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]


def audit(fragment: str) -> _Audit:
    a = _Audit()
    a.feed(fragment)
    return a


def assert_inert(fragment: str) -> None:
    a = audit(fragment)
    assert not {"script", "iframe", "img", "style", "object", "embed", "form"} & set(a.tags), a.tags
    assert not [k for k, _ in a.attrs if k.startswith("on")]
    for k, v in a.attrs:
        if k in ("href", "src"):
            assert v.startswith(("http://", "https://", "mailto:")), v


# -- Markdown from the model ----------------------------------------------------------------


def test_markdown_escapes_raw_html_and_drops_unsafe_links():
    out = markdown_html(HOSTILE)
    assert_inert(out)
    assert "&lt;script&gt;" in out  # shown as text, not dropped silently
    assert '<a href="javascript' not in out and '<a href="data' not in out
    assert "[click](javascript:alert(1))" in out  # an unsafe link stays visible as text


def test_markdown_keeps_formatting_and_safe_links():
    out = markdown_html("**bold** and [WHO](https://www.who.int) and `x<y`\n\n| a | b |\n|---|--:|\n| 1 | 2 |")
    assert "<strong>bold</strong>" in out
    assert 'href="https://www.who.int"' in out and "noopener" in out
    assert "<code>x&lt;y</code>" in out
    assert "<table>" in out and "text-align:right" in out


STREAMED = (
    "# Speed and safety\n\nLower limits cut **deaths** [1].\n\n```python\nx = 1\n\n\ny = 2\n```\n\n"
    "1. slower impacts\n2. shorter stops\n\n   (a continuation of item 2)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "> a quote\n\nThe last paragraph, still being written"
)


def test_streaming_markdown_caches_finished_blocks_and_matches_a_whole_parse():
    segments = markdown_segments(STREAMED)
    assert "".join(segments) == STREAMED
    assert any("x = 1\n\n\ny = 2" in s for s in segments)  # a fence is never cut at its blank lines
    assert any("(a continuation of item 2)" in s and "1. slower" in s for s in segments)  # indented: same block
    assert len(segments) == 7
    for end in range(1, len(STREAMED) + 1, 7):  # every prefix a redraw could see
        prefix = STREAMED[:end]
        if len(_fences(prefix)) % 2 == 0:  # an open fence renders differently until it closes
            assert streaming_markdown_html(prefix) == markdown_html(prefix), prefix


def test_streaming_markdown_starts_afresh_for_another_answer():
    streaming_markdown_html(STREAMED)
    other = "A different answer.\n\nWith **two** paragraphs."
    assert streaming_markdown_html(other) == markdown_html(other)
    assert streaming_markdown_html(STREAMED[:40]) == markdown_html(STREAMED[:40])


def _fences(text):
    return [line for line in text.splitlines() if line.lstrip().startswith("```")]


def test_streaming_markdown_is_sanitized_too():
    out = streaming_markdown_html("Fine.\n\n" + HOSTILE + "\n\nStill " + HOSTILE)
    assert_inert(out)
    assert out.count("&lt;script&gt;") == 2


def test_run_html_parses_the_whole_answer_once_it_is_done():
    # Split by a blank line, a list streams as two lists; the final draw is one list again.
    text = "1. one\n\n2. two"
    assert run_html(blocks=[text], done=False).count("<ol") == 2
    assert run_html(blocks=[text], done=True).count("<ol") == 1
    assert run_html(blocks=[text], error=("dropped", "provider")).count("<ol") == 1


def _markdown_samples() -> list[str]:
    corpus = Path(fourhosts_jupyter.__file__).parent / "data" / "corpus"
    docs = [p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.md"))]
    tricky = [
        HOSTILE, STREAMED, "1. one\n\n2. two", "* a\n  * b\n\n    code?\n", "[x]: https://e.org\n\nsee [x]",
        "a ~~b~~ *c* **d** `e` \\* &amp; &copy; &#x3C;", "| a | b |\n|:-|:-:|\n| `|` | [l](https://x.y) |",
        "<https://auto.link> and <mailto:a@b.c>", "![img](https://x/y.png) [t](https://x \"title\")",
        "Setext\n===\n\n---\n\n> > nested\n> quote", "```\nunclosed fence", "    indented code\n",
    ]  # fmt: skip
    return docs + tricky


def test_the_rust_parser_renders_exactly_what_markdown_it_py_renders():
    # The fast parser is only an accelerator: any difference would mean two products.
    rust, python = rust_markdown(), python_markdown()
    samples = _markdown_samples()
    assert len(samples) > 25
    for text in samples:
        # One known difference, invisible: a fence still open at the very end of the text keeps
        # its last newline inside <pre> in the Rust port (as CommonMark says) and drops it in Python.
        fast, slow = (markdown_html(text, parser=p).replace("\n</code></pre>", "</code></pre>") for p in (rust, python))
        assert fast == slow, text[:80]


def test_plain_text_drops_terminal_escapes():
    assert plain("red\x1b[31mX\x1b[0m bell\x07 ok\n") == "redX bell ok\n"


# -- host bar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "probs",
    [
        {D: 0.125, T: 0.125, B: 0.5, M: 0.25},
        {D: 1 / 3, T: 1 / 3, B: 1 / 3, M: 0.0},
        {D: 0.0, T: 0.0, B: 0.0, M: 0.0},
        {D: 0.9945, T: 0.003, B: 0.002, M: 0.0005},
    ],
)
def test_percentages_match_the_classifiers_rounding(probs):
    pct = percentages(probs)
    assert list(pct) == list(HOSTS)
    total = sum(probs.values())
    for h in HOSTS:  # the same rounding as Classification.summary() and its reason line
        assert pct[h] == (round(probs[h] * 100 / total) if total else 25)
    assert abs(sum(pct.values()) - 100) <= 2


def test_text_bar_cells_add_up_even_when_percentages_do_not():
    text = host_bar_text(classification({D: 1 / 3, T: 1 / 3, B: 1 / 3, M: 0.0}))
    assert text.splitlines()[0] == "Hosts [" + "D" * 14 + "T" * 13 + "B" * 13 + "]"
    assert "33%" in text and "34%" not in text
    text = host_bar_text(classification({D: 0.9945, T: 0.003, B: 0.002, M: 0.0005}))
    assert text.splitlines()[0] == "Hosts [" + "D" * 40 + "]"
    assert "Dolores (Action)        99%" in text and "dolores at 99%" in text


def test_host_bar_html_segments_legend_and_dominant():
    c = classification({D: 0.1, T: 0.2, B: 0.6, M: 0.1})
    out = host_bar_html(c)
    for h in HOSTS:
        assert PROFILES[h].color in out
    assert "width:60.0%;background:" + PROFILES[B].color in out
    assert "Bernard 60% <b>◀ dominant</b>" in out
    assert "Answering as Bernard" in out
    assert_inert(out)


def test_host_bar_text_is_deterministic_and_proportional():
    c = classification({D: 0.1, T: 0.2, B: 0.6, M: 0.1})
    text = host_bar_text(c)
    bar = text.splitlines()[0]
    assert bar == "Hosts [" + "D" * 4 + "T" * 8 + "B" * 24 + "M" * 4 + "]"
    assert len(bar) == len("Hosts []") + BAR_WIDTH
    assert "  Bernard (Analysis)      60%  ◀ dominant\n" in text
    assert host_bar_text(c) == text


def test_host_bar_says_why_when_no_host_is_dominant():
    c = classification({D: 0.3, T: 0.3, B: 0.2, M: 0.2})
    for out in (host_bar_text(c), host_bar_html(c)):
        assert "No dominant host" in out and "by default" in out and "defaulting to bernard" in out
        assert "dominant</b>" not in out and "◀ dominant" not in out
    assert "◀ answering" in host_bar_text(c)  # the default host is marked as the one answering


def test_host_bar_accepts_the_stored_dict_form():
    c = classification({D: 0.1, T: 0.2, B: 0.6, M: 0.1})
    assert host_bar_text(c.to_dict()) == host_bar_text(c)
    assert host_bar_html(c.to_dict()) == host_bar_html(c)


# -- stage line, tool cards, sources ----------------------------------------------------------


def test_stage_line_names_the_running_stage():
    assert "🔍 Choosing sources…" in stage_html("select")
    assert stage_text("classify") == "Stage: 🧭 Classifying the question…"
    assert stage_text("model", "✍️ Answering (offline: extractive)") == "Stage: ✍️ Answering (offline: extractive)…"
    assert "✅ Done" in stage_html("model", done=True)
    assert "❌" in stage_html("model", failed=True)


def test_tool_card_states_and_escaping():
    card = ToolCard(call_id="c1", name="<b>search</b>")
    card.args_parts += ['{"query": "<script>', 'x</script>"']
    out = tool_card_html(card)
    assert "receiving" in out and "&lt;script&gt;" in out
    assert_inert(out)
    card.state, card.arguments = "running", {"query": "<script>x</script>"}
    assert "running" in tool_card_html(card)
    card.state, card.seconds, card.result = "done", 0.25, "<img src=x onerror=alert(1)> result"
    out = tool_card_html(card)
    assert "<details>" in out and "0.25 s" in out and "&lt;img" in out
    assert_inert(out)
    assert tool_card_text(card).startswith("[tool <b>search</b>: done, 0.25 s]")
    card.state, card.error, card.kind, card.result = "circuit_open", "open after 3 failures", "circuit_open", ""
    assert "circuit open" in tool_card_html(card) and "open after 3 failures" in tool_card_text(card)


def test_sources_list_numbered_with_origin_and_reasons():
    srcs = [
        Source(1, "a", "<b>Vision Zero</b>", "t", origin="https://ex.org/vz", reasons=("semantic match 0.8",)),
        Source(2, "b", "Speed", "t", origin="javascript:alert(1)"),
    ]
    out = sources_html(srcs)
    assert '<li value="1"><b>&lt;b&gt;Vision Zero&lt;/b&gt;</b>' in out
    assert 'href="https://ex.org/vz"' in out and "semantic match 0.8" in out
    assert "<code>javascript:alert(1)</code>" in out  # not a link
    assert_inert(out)


def test_bundled_corpus_sources_are_named_user_files_and_urls_kept():
    from fourhosts_jupyter.memory.seed import corpus_files

    bundled = str(next(p for p in corpus_files() if p.name == "speed-management.md"))
    elsewhere = "/opt/venv/lib/python3.11/site-packages/fourhosts_jupyter/data/corpus/remote-work-policy.md"
    srcs = [
        Source(1, "a", "Speed Management", "t", origin=bundled),
        Source(2, "b", "Remote work", "t", origin=elsewhere),  # a store written by another install
        Source(3, "c", "My notes", "t", origin="/home/ana/notes/speed.md"),
        Source(4, "d", "Vision Zero", "t", origin="https://ex.org/vz"),
    ]
    html_out, text_out = sources_html(srcs), sources_text(srcs)
    for out in (html_out, text_out):
        assert "demo corpus: speed-management.md" in out and "demo corpus: remote-work-policy.md" in out
        assert "/home/ana/notes/speed.md" in out  # a user's own file keeps its path
        assert "site-packages" not in out and "data/corpus" not in out
    assert "<code>demo corpus: speed-management.md</code>" in html_out
    assert '<a href="https://ex.org/vz" target="_blank"' in html_out  # URLs stay links
    md = answer_markdown(dataclasses.replace(make_answer(), sources=tuple(srcs)))
    assert "`demo corpus: speed-management.md`" in md and "site-packages" not in md


# -- whole run and the Answer -------------------------------------------------------------------


def make_answer(text: str = "Cut speeds [1].") -> Answer:
    return Answer(
        run_id="r_1",
        question="How <i>now</i>?",
        text=text,
        classification=classification({D: 0.1, T: 0.2, B: 0.6, M: 0.1}),
        sources=(Source(1, "a", "Speed <management>", "t", origin="corpus/speed.md"),),
        provider="offline",
        model="extractive",
        offline=True,
        usage=Usage(10, 5, 15, 0.0),
        tool_calls=(ToolCallRecord("c1", "search_memory", {"query": "speed"}, "done", 0.1, "3 hits"),),
        notices=("provider switched: azure → offline",),
    )


def test_run_html_keeps_blocks_in_order_and_is_inert():
    card = ToolCard(call_id="c1", name="search_memory", state="done", seconds=0.1, result="ok")
    blocks = ["Before the tool.", card, "After the tool. " + HOSTILE]
    out = run_html(blocks=blocks, error=("stream dropped <script>", "provider"))
    assert out.index("Before the tool.") < out.index("search_memory") < out.index("After the tool.")
    assert "Run failed" in out and "stream dropped &lt;script&gt;" in out
    assert_inert(out)
    text = run_text(blocks=blocks)
    assert text.index("Before the tool.") < text.index("[tool search_memory") < text.index("After the tool.")


def test_answer_mimebundle_html_text_and_markdown():
    a = make_answer(HOSTILE + "\n\nCut speeds [1].")
    bundle = a._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert_inert(bundle["text/html"])
    assert "offline · extractive" in bundle["text/html"]
    assert "provider switched: azure → offline" in bundle["text/html"]
    assert "Speed &lt;management&gt;" in bundle["text/html"]
    assert "[tool search_memory: done" in answer_text(a)
    assert "[1] Speed <management> — corpus/speed.md" in answer_text(a)
    md = answer_markdown(a)
    assert md.startswith("## How \\<i\\>now\\</i\\>?")
    assert "1. Speed \\<management\\> — `corpus/speed.md`" in md
    assert "Answered as Bernard" in md
    assert answer_html(a) == bundle["text/html"]
