"""Tracing overhead: ``python -m fourhosts_jupyter.bench telemetry``.

The same runs with no SDK (the API's no-op: ``telemetry.active()`` is False, nothing is
wrapped) and with the SDK configured as ``opentelemetry-instrument`` would (a TracerProvider,
a BatchSpanProcessor, an exporter — here one that drops the spans, so what is timed is our side
and the SDK's, not a collector's), interleaved round by round, order rotated; every figure is a
median (ratios: the median of per-round ratios).

1. A streamed answer of N chunks (default 2,000) from the scripted server in its own process,
   through the whole engine (sync twin, worker thread, bare consumer): one run span, six stage
   spans, one model-call span, and the pipeline stepped in its own Context (``_InContext``) for
   each of its events.
2. A run with two tool rounds (three tool calls) against the same kind of server: the
   execute_tool spans and the span per model call.
3. The cost of stepping an async generator inside a Context, per event, against iterating it
   directly (no engine, no I/O).

The SDK cannot be un-set in a process, so the "no SDK" rounds point the API's global provider
back at its proxy between rounds (``trace._TRACER_PROVIDER``): a benchmark-only switch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Any, Callable


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    t = _now()
    fn()
    return time.perf_counter() - t[0], time.process_time() - t[1]


def _sdk() -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Any) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    exporter = Dropped()
    provider = TracerProvider(resource=Resource.create({"service.name": "fourhosts-bench"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def _use(provider: Any) -> None:
    from opentelemetry import trace

    trace._TRACER_PROVIDER = provider  # None: back to the proxy (no SDK); see the docstring


def _serve(conn: Any, text: str, chunks: int) -> None:
    from ..testing import Call, Reply, ScriptedServer

    def respond(req: Any) -> Any:
        if req.body.get("model") != "tools":
            return Reply.say(text, chunks=chunks, usage=(1000, chunks))
        rounds = sum(1 for m in req.body.get("messages", []) if m.get("role") == "tool")
        if rounds == 0:
            return Reply.parallel(Call("lookup", {"city": "Oslo"}), Call("lookup", {"city": "Lyon"}), usage=(900, 30))
        if rounds == 2:
            return Reply.call("lookup", {"city": "Turin"}, usage=(1000, 20))
        return Reply.say("Oslo, Lyon and Turin [1].", usage=(1100, 12))

    with ScriptedServer(responder=respond) as server:
        conn.send(server.base_url)
        conn.recv()


def _step_cost(events: int, repeat: int) -> tuple[float, float]:
    from ..telemetry import _InContext

    async def source() -> Any:
        for i in range(events):
            if i % 64 == 0:
                await asyncio.sleep(0)
            yield i

    async def direct() -> None:
        async for _ in source():
            pass

    async def stepped() -> None:
        async for _ in _InContext(source(), contextvars.copy_context()):
            pass

    def once(coro: Callable[[], Any]) -> float:
        t = time.process_time()
        asyncio.run(coro())
        return time.process_time() - t

    a, b = [], []
    for i in range(repeat):
        pair = [(a, direct), (b, stepped)][:: 1 if i % 2 else -1]
        for into, fn in pair:
            into.append(once(fn))
    return statistics.median(a) / events * 1e6, statistics.median(b) / events * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench telemetry")
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=31)
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from ..config import Settings
    from ..engine import Engine
    from ..memory.embeddings import HashingEmbedder
    from ..memory.store import Store
    from ..tools import ToolRegistry
    from .stream import _answer_text

    reg = ToolRegistry()

    @reg.register
    def lookup(city: str) -> dict:
        """Look a city up."""
        return {"city": city, "population": 700_000}

    home = tempfile.mkdtemp(prefix="fourhosts-bench-telemetry-")
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(theirs, _answer_text(a.chunks * 8), a.chunks), daemon=True)
    server.start()
    provider, exporter = _sdk()
    try:
        base_url = ours.recv()
        store = Store(os.path.join(home, "store.duckdb"))

        def engine(model: str) -> Engine:
            return Engine(Settings(base_url=base_url, model=model, max_retries=0), store=store,
                          embedder=HashingEmbedder(), tools=reg)

        def stream_run() -> None:
            events = list(engine("bench").stream("How do lower speed limits reduce deaths?", paradigm="bernard"))
            assert events[-1].type == "answer", events[-1]

        def tools_run() -> None:
            answer = engine("tools").research("Which cities have 700,000 people?", paradigm="bernard")
            assert len(answer.tool_calls) == 3, answer.tool_calls

        for fn in (stream_run, tools_run):  # warm: seed the store, import everything, both ways
            for p in (None, provider):
                _use(p)
                fn()
        results: dict[str, dict[str, list[tuple[float, float]]]] = {
            "stream": {"off": [], "on": []}, "tools": {"off": [], "on": []}}
        spans_before = exporter.spans
        provider.force_flush()
        for i in range(a.repeat):
            order = [("off", None), ("on", provider)][:: 1 if i % 2 else -1]
            for name, fn in (("stream", stream_run), ("tools", tools_run)):
                for side, p in order:
                    _use(p)
                    gc.collect()
                    results[name][side].append(_timed(fn))
        _use(None)
        provider.force_flush()
        spans = (exporter.spans - spans_before) / a.repeat
    finally:
        ours.send("stop")
        server.join(10)
        provider.shutdown()

    def med(xs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(x[i] for x in xs)

    def ratio(name: str, i: int) -> float:
        return statistics.median(on[i] / off[i] for on, off in zip(results[name]["on"], results[name]["off"]))

    print(f"Tracing overhead: SDK configured (BatchSpanProcessor, spans dropped) vs no SDK, "
          f"{a.repeat} interleaved rounds, medians ({spans:.0f} spans exported per round's two traced runs):")
    for name, label in (("stream", f"streamed answer, {a.chunks:,} chunks"),
                        ("tools", "two tool rounds, three tool calls")):
        off, on = results[name]["off"], results[name]["on"]
        print(f"  {label:<36} no SDK: wall {med(off, 0) * 1e3:7.1f} ms  cpu {med(off, 1) * 1e3:7.1f} ms | "
              f"SDK: wall {med(on, 0) * 1e3:7.1f} ms  cpu {med(on, 1) * 1e3:7.1f} ms | "
              f"ratio wall {ratio(name, 0):.3f}  cpu {ratio(name, 1):.3f}")
    direct, stepped = _step_cost(20_000, a.repeat)
    print(f"  stepping the pipeline in its own Context: {stepped:.2f} µs/event vs {direct:.2f} µs/event "
          f"iterated directly (+{stepped - direct:.2f} µs/event; only when an SDK is configured)")
    return 0
