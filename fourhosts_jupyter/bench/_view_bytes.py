"""Bytes to the browser: what a live cell sends while a long answer streams.

Shared by ``bench view`` (figures) and the tests (the bound). A synthetic run: a ~12 kB
Markdown answer streamed in small chunks over ``seconds`` of *fake* time (a clock the views
read), with one tool round in the middle, so the coalescer redraws as it would at 10/s. Every
display and update is counted in bytes (each MIME type's text, UTF-8), as the kernel would send
them; the final size is what the cell shows at the end (each output's last content).
"""

from __future__ import annotations

from typing import Any, Callable

PARAGRAPH = ("Lower urban speed limits reduce the severity of crashes [1], and streets designed so "
             "that the limit feels natural keep speeds down without constant enforcement [2]. ")  # fmt: skip


def answer_text(target: int = 12_000) -> str:
    paras, i = [], 0
    while sum(len(p) + 2 for p in paras) < target:
        i += 1
        paras.append(f"**Step {i}.** " + PARAGRAPH * 2)
    return "\n\n".join(paras)


def _size(obj: Any) -> int:
    return sum(len(v.encode()) for v in obj._repr_mimebundle_().values() if isinstance(v, str))


class Sink:
    """A display function that counts bytes and keeps each output's last content."""

    def __init__(self) -> None:
        self.bytes = 0
        self.messages = 0
        self.last: list[dict[str, str]] = []

    def display(self, obj: Any, display_id: bool = False) -> Any:
        self.bytes += _size(obj)
        self.messages += 1
        self.last.append(obj._repr_mimebundle_())
        slot = len(self.last) - 1
        sink = self

        class Handle:
            def update(self, new: Any) -> None:
                sink.bytes += _size(new)
                sink.messages += 1
                sink.last[slot] = new._repr_mimebundle_()

        return Handle() if display_id else None

    @property
    def final_bytes(self) -> int:
        return sum(len(v.encode()) for b in self.last for v in b.values() if isinstance(v, str))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_events(question: str = "How should a city cut traffic deaths?", *, host: str | None = None,
               text: str | None = None, chunks: int = 700) -> list[Any]:  # fmt: skip
    """RunStarted … text chunks (a tool round halfway) … AnswerReady, for one run."""
    from ..answer import Answer
    from ..classifier import classify
    from ..events import (
        AnswerReady,
        Classified,
        LayerStarted,
        RunStarted,
        Source,
        TextDelta,
        ToolCallArgumentsDelta,
        ToolCallFinished,
        ToolCallRunning,
        ToolCallStarted,
    )
    from ..memory.embeddings import HashingEmbedder

    text = text if text is not None else answer_text()
    c = classify(question, paradigm=host, embedder=HashingEmbedder())
    size = max(1, len(text) // chunks)
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    out: list[Any] = [RunStarted("r_0000000000000000", question, {}), Classified(c),
                      LayerStarted("model", "✍️ Answering")]  # fmt: skip
    for i, p in enumerate(pieces):
        if i == len(pieces) // 2:
            out += [ToolCallStarted("c1", "search_memory"), ToolCallArgumentsDelta("c1", '{"query": "speed"}'),
                    ToolCallRunning("c1", "search_memory", {"query": "speed"}),
                    ToolCallFinished("c1", "search_memory", {"hits": 3}, 0.01, "3 hits")]  # fmt: skip
        out.append(TextDelta(p))
    sources = (Source(1, "m1", "Speed management", "…"), Source(2, "m2", "Street design", "…"))
    answer = Answer("r_0000000000000000", question, text, c, sources, "scripted", "m", False,
                    timings={"total": 7.0})  # fmt: skip
    out.append(AnswerReady(answer))
    return out


def stream_view(view: Any, clock: FakeClock, events: list[Any], seconds: float) -> None:
    step = seconds / max(1, len(events))
    for e in events:
        view.handle_item(e)
        clock.now += step
    view.flush()


def _measure(make_view: Callable[..., Any], events: list[Any], seconds: float) -> dict[str, Any]:
    sink, clock = Sink(), FakeClock()
    view = make_view(live=True, max_rate=10, clock=clock, display=sink.display)
    stream_view(view, clock, events, seconds)
    return {"bytes": sink.bytes, "messages": sink.messages, "final": sink.final_bytes, "sink": sink,
            "view": view, "redraws": getattr(view, "redraws", view.updates)}  # fmt: skip


def measure_run(make_view: Callable[..., Any], seconds: float = 7.0) -> dict[str, Any]:
    return _measure(make_view, run_events(), seconds)


def grid_events(seconds_hosts: tuple[str, ...] = ("dolores", "teddy", "bernard", "maeve")) -> list[Any]:
    """A four-panel comparison: each host's run interleaved chunk by chunk, then the footer."""
    from ..comparison import CompareFinished, CompareStarted, Comparison
    from ..paradigms import HostParadigm

    hosts = tuple(HostParadigm(h) for h in seconds_hosts)
    out: list[Any] = [CompareStarted("c_0000000000000000", "How should a city cut traffic deaths?", hosts)]
    comparison = Comparison("c_0000000000000000", "How should a city cut traffic deaths?", hosts)
    out += _interleaved({h: run_events(host=h.value) for h in hosts}, comparison, seconds=7.0)
    out.append(CompareFinished(comparison))
    return out


def _interleaved(runs: dict[Any, list[Any]], into: Any, seconds: float) -> list[Any]:
    """The hosts' runs as HostEvents, one event of each host in turn; each finished answer is
    recorded in ``into`` (a Comparison)."""
    from ..comparison import HostEvent, HostResult
    from ..events import AnswerReady

    out: list[Any] = []
    for i in range(max(len(r) for r in runs.values())):
        for h, events in runs.items():
            if i < len(events):
                e = events[i]
                out.append(HostEvent(h, e))
                if isinstance(e, AnswerReady):
                    into.results[h] = HostResult(h, e.answer.run_id, e.answer, seconds=seconds)
    return out


def blend_events(hosts: tuple[str, ...] = ("dolores", "teddy")) -> list[Any]:
    """A weighted blend of two hosts: BlendStarted, both hosts' runs interleaved chunk by chunk
    (their parts), then the ~12 kB unified answer in small chunks, then BlendFinished."""
    from ..blending import BlendFinished, BlendPlan, BlendResult, BlendStarted, UnifiedDelta
    from ..classifier import classify
    from ..comparison import Comparison
    from ..events import Source
    from ..memory.embeddings import HashingEmbedder
    from ..paradigms import HostParadigm

    question = "How should a city cut traffic deaths?"
    chosen = tuple(HostParadigm(h) for h in hosts)
    c = classify(question, embedder=HashingEmbedder())
    w = {h: 1 / len(chosen) for h in chosen}
    plan = BlendPlan("weighted", chosen, w, "two hosts qualify: dolores 45% + teddy 40%; weighted", 0.8)
    cid = "c_0000000000000000"
    out: list[Any] = [BlendStarted(cid, question, plan, c)]
    parts = Comparison(cid, question, chosen, kind="blend")
    out += _interleaved({h: run_events(host=h.value, text=answer_text(4_000), chunks=240)
                         for h in chosen}, parts, seconds=3.0)
    text = answer_text()
    size = max(1, len(text) // 700)
    out += [UnifiedDelta(text[i : i + size]) for i in range(0, len(text), size)]
    sources = (Source(1, "m1", "Speed management", "…"), Source(2, "m2", "Street design", "…"))
    out.append(BlendFinished(BlendResult(plan, parts, text=text, sources=sources, seconds=7.0)))
    return out


def measure_grid(make_view: Callable[..., Any], seconds: float = 7.0) -> dict[str, Any]:
    return _measure(make_view, grid_events(), seconds)


class KernelTraffic:
    """Every message a kernel would publish for a cell's live output, as ipykernel builds it.

    Use as a context: ``display`` (pass it to a view) publishes ``display_data`` /
    ``update_display_data`` (handles) like IPython's display publisher, and while the context is
    open ``comm.create_comm`` makes comms that publish ``comm_open`` (a widget's whole state),
    ``comm_msg`` (state updates) and ``comm_close`` — the traffic ipywidgets sends. Each message
    is counted twice: its content as JSON (what the front-end reads; the measure the figures
    compare) and on the wire (jupyter_client's Session framing: topic, signature, header, parent
    header, metadata, content — a per-message envelope of ~0.5 kB on top)."""

    def __init__(self) -> None:
        from jupyter_client.session import Session

        self.session = Session(key=b"bench-view-bytes", username="analyst")
        self.parent = self.session.msg("execute_request", {"code": "%%research --compare\n…"})
        self.messages: list[tuple[str, int, int]] = []  # (msg_type, content bytes, wire bytes)
        self.contents: list[dict[str, Any]] = []  # each message's content, in order
        self.outputs: dict[str, dict[str, Any]] = {}  # display id → the output's last data
        self._saved: Any = None

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any] | None = None,
                topic: str = "") -> None:  # fmt: skip
        msg = self.session.msg(msg_type, content, parent=self.parent, metadata=metadata or {})
        frames = self.session.serialize(msg, ident=[topic.encode()] if topic else None)
        self.messages.append((msg_type, len(self.session.pack(content)), sum(len(f) for f in frames)))
        self.contents.append(content)

    def display(self, obj: Any, display_id: bool = False) -> Any:
        import uuid

        out_id = uuid.uuid4().hex
        transient = {"display_id": out_id} if display_id else {}
        data = obj._repr_mimebundle_()
        self.outputs[out_id] = data
        self.publish("display_data", {"data": data, "metadata": {}, "transient": transient}, topic="display_data")
        traffic = self

        class Handle:
            def update(self, new: Any) -> None:
                data = new._repr_mimebundle_()
                traffic.outputs[out_id] = data
                traffic.publish("update_display_data", {"data": data, "metadata": {}, "transient": transient},
                                topic="update_display_data")  # fmt: skip

        return Handle() if display_id else None

    def __enter__(self) -> KernelTraffic:
        import comm
        from comm.base_comm import BaseComm

        traffic = self

        class RecordingComm(BaseComm):
            def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                            **keys: Any) -> None:  # fmt: skip
                content = {"data": {} if data is None else data, "comm_id": self.comm_id, **keys}
                traffic.publish(msg_type, content, metadata, topic=f"comm-{self.comm_id}")

        self._saved = comm.create_comm
        comm.create_comm = lambda *a, **k: RecordingComm(*a, **k)
        return self

    def __exit__(self, *exc: Any) -> None:
        import comm

        comm.create_comm = self._saved

    # -- figures ---------------------------------------------------------------------------------

    @property
    def content_bytes(self) -> int:
        return sum(c for _, c, _ in self.messages)

    @property
    def wire_bytes(self) -> int:
        return sum(w for _, _, w in self.messages)

    @property
    def final_bytes(self) -> int:
        """What the cell holds at the end: each output's last data (JSON, as in the notebook)."""
        return sum(len(self.session.pack({"data": d, "metadata": {}})) for d in self.outputs.values())

    def count(self, msg_type: str) -> int:
        return sum(1 for t, _, _ in self.messages if t == msg_type)


def measure_traffic(make_view: Callable[..., Any], events: list[Any], seconds: float = 7.0) -> dict[str, Any]:
    """Stream ``events`` into ``make_view(live=True, max_rate=10, clock=…, display=…)`` under a
    ``KernelTraffic``; returns the figures and the traffic."""
    clock = FakeClock()
    with KernelTraffic() as traffic:
        view = make_view(live=True, max_rate=10, clock=clock, display=traffic.display)
        stream_view(view, clock, events, seconds)
    return {"bytes": traffic.content_bytes, "wire": traffic.wire_bytes, "messages": len(traffic.messages),
            "final": traffic.final_bytes, "traffic": traffic, "view": view, "seconds": seconds,
            "redraws": getattr(view, "redraws", view.updates)}  # fmt: skip
