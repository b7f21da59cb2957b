"""A scripted OpenAI server on loopback (Chat Completions and Responses), for tests, demos and
benchmarks.

It speaks the real wire protocol (JSON and Server-Sent Events) for the URL shapes the
``openai`` client uses, so production code talks to it through the official client unchanged:

    POST /v1/chat/completions                                    (OpenAI, compatible servers)
    POST /openai/deployments/{deployment}/chat/completions?api-version=…   (Azure, ``api-key``)
    POST /v1/responses, /openai/v1/responses                     (Responses; Azure's v1 surface)
    POST …/embeddings                                            (deterministic hashing vectors)
    GET  …/models

Each chat request takes the next scripted :class:`Reply` from a queue (or asks a responder
function), so a test or a notebook can say exactly what the "model" does: stream text, call
tools (arguments split across chunks, several calls per turn, ids and names sent once or on
every chunk, calls streamed one after another or interleaved), report usage, answer 429 with
Retry-After or 500, drop the connection mid-stream, end the stream early but cleanly (no
finish reason, no ``[DONE]``; :meth:`Reply.cut`, :meth:`Reply.empty`), or stream slowly. Every
request is recorded for assertions.

What a whole *server* does, whatever the reply, is set with :class:`Quirks` (``Quirks.llama_cpp()``
is llama-cpp-python's server: it cannot stream tool turns, closes its connection right after
such a reply, sends the deprecated ``function_call`` beside ``tool_calls`` with ids it invents,
and refuses an assistant turn whose ``content`` is null).

    with ScriptedServer() as server:
        server.script(Reply.call("search_memory", {"query": "speed"}), Reply.say("Done [1]."))
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

Stdlib only (``http.server`` on a thread); nothing here imports the rest of the package.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

__all__ = ["Call", "Quirks", "RecordedRequest", "Reply", "ScriptedServer"]

# What llama-cpp-python's server says when asked to stream a tool turn with tool_choice "auto".
NO_STREAMED_TOOLS = "Automatic streaming tool choice is not supported"


@dataclass(frozen=True)
class Call:
    """One tool call the scripted model makes."""

    name: str
    arguments: str | Mapping[str, Any] = "{}"  # a dict is JSON-encoded; a str is sent verbatim
    id: str | None = None  # None → "call_<n>"

    @property
    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """What the scripted model does for one request. Build with the class methods."""

    text: str = ""
    calls: tuple[Call, ...] = ()
    text_chunk: int = 8  # characters of text per chunk
    args_chunk: int = 7  # characters of tool arguments per chunk
    repeat_ids: bool = False  # send id/type/name on every chunk of a call (some servers do)
    omit_index: bool = False  # tool-call deltas without "index" (some servers leave it out)
    # Stream the calls' argument pieces round-robin (call 0 piece 0, call 1 piece 0, call 0
    # piece 1, …) instead of finishing call 0 before call 1 starts, as some servers do.
    interleave: bool = False
    # With interleaving: this many calls' deltas share one chunk (delta.tool_calls of that
    # length, distinct indexes). Above 1 it implies ``interleave``.
    calls_per_chunk: int = 1
    # Each call opens with a delta of its own carrying id/type/name and arguments "" (as
    # OpenAI's API sends it); the argument pieces follow.
    empty_head: bool = False
    finish_reason: str | None = None  # None → "tool_calls" when calls, else "stop"
    usage: tuple[int, int] | None = None  # (prompt, completion); None → estimated from the text
    usage_always: bool = False  # send the usage chunk even when the client did not ask
    status: int = 200
    error: str = ""  # message of an error reply
    headers: tuple[tuple[str, str], ...] = ()
    drop_after: int | None = None  # close the connection after this many SSE events
    # End the body cleanly after this many SSE events (``Connection: close``, the body simply
    # ends): no finish_reason, no [DONE] — the client sees a normal end of stream. A request
    # with stream=false gets a 200 with an empty body.
    cut_after: int | None = None
    delay: float = 0.0  # seconds between SSE events
    first_delay: float = 0.0  # seconds before the first byte
    reject_params: tuple[str, ...] = ()  # 400 if the request carries one of these parameters
    chunks: int | None = None  # stream the text as exactly this many content chunks
    azure_preamble: bool | None = None  # a first chunk with empty choices (Azure); None → on Azure paths
    # Responses API only (``/v1/responses``, ``/openai/v1/responses``):
    reasoning: str = ""  # a reasoning summary streamed before the answer (parts split on blank lines)
    encrypted_reasoning: str = ""  # the reasoning item's encrypted_content, sent when the request includes it
    incomplete: str = ""  # end with response.incomplete and this reason (e.g. "max_output_tokens")
    failed: tuple[str, str] = ()  # (code, message): end with response.failed
    error_event: bool = False  # with ``failed``: an ``error`` event instead of response.failed
    no_terminal: bool = False  # end the stream cleanly with no response.completed / incomplete / failed

    # -- builders --------------------------------------------------------------------------

    @classmethod
    def say(cls, text: str, **options: Any) -> Reply:
        """Stream ``text`` and stop."""
        return cls(text=text, **options)

    @classmethod
    def call(cls, name: str, arguments: str | Mapping[str, Any] = "{}", *, id: str | None = None,
             text: str = "", **options: Any) -> Reply:
        """Call one tool (after optional ``text``)."""
        return cls(text=text, calls=(Call(name, arguments, id),), **options)

    @classmethod
    def parallel(cls, *calls: Call | tuple[str, Any], text: str = "", **options: Any) -> Reply:
        """Call several tools in one turn (parallel tool calls)."""
        norm = tuple(c if isinstance(c, Call) else Call(*c) for c in calls)
        return cls(text=text, calls=norm, **options)

    @classmethod
    def fail(cls, status: int, message: str = "", *, retry_after: float | None = None,
             **options: Any) -> Reply:
        """An HTTP error reply (429, 500, 401, …) with an OpenAI-shaped error body."""
        headers = tuple(options.pop("headers", ()))
        if retry_after is not None:
            headers += (("retry-after", f"{retry_after:g}"),)
        return cls(status=status, error=message or f"scripted error {status}", headers=headers,
                   **options)

    @classmethod
    def drop(cls, text: str, *, after: int, **options: Any) -> Reply:
        """Start streaming ``text``, then close the connection after ``after`` events."""
        return cls(text=text, drop_after=after, **options)

    @classmethod
    def cut(cls, text: str, *, after: int, **options: Any) -> Reply:
        """Stream ``after`` events of ``text`` (the role chunk counts), then end the body cleanly
        with no finish reason and no [DONE], as a server that stops early does."""
        return cls(text=text, cut_after=after, **options)

    @classmethod
    def empty(cls, **options: Any) -> Reply:
        """HTTP 200, an event stream that ends with nothing in it."""
        return cls(cut_after=0, **options)

    @classmethod
    def truncated(cls, text: str, reason: str = "max_output_tokens", **options: Any) -> Reply:
        """Responses API: stream ``text``, then end with ``response.incomplete`` and ``reason``."""
        return cls(text=text, incomplete=reason, **options)

    @classmethod
    def failing(cls, code: str, message: str, *, text: str = "", **options: Any) -> Reply:
        """Responses API: stream ``text``, then end with ``response.failed`` (code, message)."""
        return cls(text=text, failed=(code, message), **options)

    def with_(self, **changes: Any) -> Reply:
        return replace(self, **changes)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    deployment: str | None = None  # Azure URL shape

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tool_names(self) -> list[str]:
        return [t.get("function", {}).get("name", "") for t in self.body.get("tools") or []]

    def tool_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("role") == "tool"]


Responder = Callable[[RecordedRequest], Reply]


@dataclass(frozen=True)
class Quirks:
    """What the whole server does, whatever reply is scripted (defaults: a well-behaved server)."""

    # A streamed request with tools and tool_choice "auto" is refused before any reply is taken
    # from the queue: 200 → an event stream that ends empty (llama-cpp-python), any other status
    # → that error status; either way with ``NO_STREAMED_TOOLS`` as the message.
    refuse_streamed_tools: int | None = None
    # After refusing a streamed tool turn, close the connection as soon as the client sends its
    # next request on it (or after ``close_wait`` seconds): the pooled connection dies under it.
    close_after_refusal: bool = False
    close_wait: float = 1.0
    # The deprecated ``function_call`` field beside ``tool_calls`` (streamed and not).
    function_call_field: bool = False
    repeat_ids: bool = False  # id, type and name on every chunk of a call
    # Ids like ``call__0_search_memory_cmpl-…`` for calls scripted without an id.
    invented_ids: bool = False
    # 422 (FastAPI's validation shape) for an assistant turn with tool_calls and content null.
    refuse_null_content: bool = False

    @classmethod
    def llama_cpp(cls, refuse_streamed_tools: int = 200, **changes: Any) -> Quirks:
        """llama-cpp-python's server with a function-calling chat format."""
        return cls(refuse_streamed_tools=refuse_streamed_tools, close_after_refusal=True,
                   function_call_field=True, repeat_ids=True, invented_ids=True,
                   refuse_null_content=True, **changes)


@dataclass
class _State:
    replies: queue.Queue[Reply] = field(default_factory=queue.Queue)
    requests: list[RecordedRequest] = field(default_factory=list)
    responder: Responder | None = None
    default: Reply = field(default_factory=lambda: Reply.say("(the scripted server has no reply queued)"))
    embedding_dim: int = 64
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterable[int] = field(default_factory=itertools.count)
    quirks: Quirks = field(default_factory=Quirks)


class ScriptedServer:
    """An OpenAI-shaped server on 127.0.0.1 with a queue of scripted replies."""

    def __init__(self, replies: Iterable[Reply] = (), *, responder: Responder | None = None,
                 port: int = 0, embedding_dim: int = 64, quirks: Quirks | None = None) -> None:
        self._state = _State(responder=responder, embedding_dim=embedding_dim,
                             quirks=quirks or Quirks())
        self.script(*replies)
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            return self
        state = self._state

        class Handler(_Handler):
            pass

        Handler.state = state
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fourhosts-scripted-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the scripted server is not running: call start() first")
        return self._httpd.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For ``OpenAI(base_url=…)`` and ``OPENAI_BASE_URL``."""
        return self.root + "/v1"

    @property
    def azure_endpoint(self) -> str:
        """For ``AzureOpenAI(azure_endpoint=…)`` and ``AZURE_OPENAI_ENDPOINT``."""
        return self.root

    # -- scripting ---------------------------------------------------------------------------

    def script(self, *replies: Reply) -> ScriptedServer:
        """Queue replies; each chat request takes the next one."""
        for r in replies:
            self._state.replies.put(r)
        return self

    def respond_with(self, responder: Responder | None) -> ScriptedServer:
        """Answer requests with ``responder(request)`` when the queue is empty."""
        self._state.responder = responder
        return self

    def set_quirks(self, quirks: Quirks | None = None, **changes: Any) -> ScriptedServer:
        """Make the server behave this way from the next request on (see :class:`Quirks`)."""
        self._state.quirks = replace(quirks or Quirks(), **changes)
        return self

    @property
    def quirks(self) -> Quirks:
        return self._state.quirks

    def set_default(self, reply: Reply) -> ScriptedServer:
        self._state.default = reply
        return self

    @property
    def pending(self) -> int:
        return self._state.replies.qsize()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def responses_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/responses")]

    def clear(self) -> None:
        with self._state.lock:
            self._state.requests.clear()
        while not self._state.replies.empty():
            self._state.replies.get_nowait()


# -- the protocol ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as real servers do
    state: _State

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def do_GET(self) -> None:  # noqa: N802
        req = self._record({})
        if req.path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "fourhosts"}]})
        else:
            self._json(404, _error_body(f"no route for GET {req.path}", "not_found"))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, _error_body("the request body is not JSON", "invalid_request_error"))
            return
        req = self._record(body)
        if req.path.startswith("/openai/deployments/") and "api-version" not in req.query:
            self._json(404, _error_body("Resource not found (api-version missing)", "not_found"))
            return
        if req.path.endswith("/embeddings"):
            self._embeddings(body)
        elif req.path.endswith("/chat/completions"):
            self._chat(req)
        elif req.path.endswith("/responses"):
            _responses(self, req)
        else:
            self._json(404, _error_body(f"no route for POST {req.path}", "not_found"))

    # -- helpers -----------------------------------------------------------------------------

    def _record(self, body: dict[str, Any]) -> RecordedRequest:
        parts = urlsplit(self.path)
        path = parts.path
        deployment = None
        if path.startswith("/openai/deployments/"):
            deployment = path.split("/")[3]
        req = RecordedRequest(
            method=self.command,
            path=path,
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            deployment=deployment,
        )
        with self.state.lock:
            self.state.requests.append(req)
        return req

    def _next_reply(self, req: RecordedRequest) -> Reply:
        try:
            return self.state.replies.get_nowait()
        except queue.Empty:
            pass
        if self.state.responder is not None:
            return self.state.responder(req)
        return self.state.default

    def _json(self, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dim = int(body.get("dimensions") or self.state.embedding_dim)
        data = [
            {"object": "embedding", "index": i, "embedding": _hash_vector(str(t), dim)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(str(t).split()) for t in texts)
        self._json(200, {"object": "list", "data": data, "model": body.get("model", "scripted"),
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _chat(self, req: RecordedRequest) -> None:
        quirks = self.state.quirks
        body = req.body
        if quirks.refuse_null_content:
            for i, m in enumerate(body.get("messages") or []):
                if m.get("role") == "assistant" and m.get("tool_calls") and m.get("content") is None:
                    # FastAPI's validation error, as llama-cpp-python's server answers it
                    self._json(422, {"detail": [{
                        "type": "string_type", "loc": ["body", "messages", i, "content"],
                        "msg": "Input should be a valid string", "input": None}]})
                    return
        if (quirks.refuse_streamed_tools is not None and body.get("stream") and body.get("tools")
                and body.get("tool_choice", "auto") == "auto"):
            if quirks.refuse_streamed_tools != 200:
                status = quirks.refuse_streamed_tools
                self._json(status, _error_body(NO_STREAMED_TOOLS, "server_error"))
            else:
                self._sse_head(())
                self._write(b"0\r\n\r\n")  # the error happened inside the stream: nothing in it
            if quirks.close_after_refusal:
                self._close_soon(quirks.close_wait)
            return
        reply = self._next_reply(req)
        if self._refused(reply, body, "Unrecognized request argument supplied: {}"):
            return
        model = req.deployment or body.get("model") or "scripted"
        cid = f"chatcmpl-scripted{self._begin(reply)}"
        if not body.get("stream"):
            if reply.cut_after is not None:  # an empty (cut) body where the JSON should be
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                return
            self._json(200, _completion(cid, model, reply, body, quirks))
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) or reply.usage_always
        azure = reply.azure_preamble if reply.azure_preamble is not None else req.deployment is not None
        events = list(_sse_events(cid, model, reply, body, include_usage=include_usage, azure=azure,
                                  quirks=quirks))
        if reply.cut_after is not None:
            # A clean early end: the body is delimited by the connection closing, and it closes
            # in order after the last event (no reset), so the client sees a normal end.
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            for k, v in reply.headers:
                self.send_header(k, v)
            self.end_headers()
            for e in events[: reply.cut_after]:
                self._write(b"data: " + e.encode() + b"\n\n")
                if reply.delay:
                    time.sleep(reply.delay)
            self.close_connection = True
            return
        self._send_events([b"data: " + e.encode() + b"\n\n" for e in events], reply)

    # -- what the Chat and Responses routes share ---------------------------------------------

    def _refused(self, reply: Reply, body: dict[str, Any], unsupported: str) -> bool:
        """Answer with the reply's scripted error, if it has one: 400 naming a parameter it
        rejects (``unsupported`` is the server's wording, ``{}`` the name), or its status."""
        rejected = [p for p in reply.reject_params if p in _param_names(body)]
        if rejected:
            self._json(400, _error_body(unsupported.format(rejected[0]), "invalid_request_error",
                                        param=rejected[0]))
            return True
        if reply.status != 200:
            kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(reply.status, "server_error")
            self._json(reply.status, _error_body(reply.error, kind), reply.headers)
            return True
        return False

    def _begin(self, reply: Reply) -> int:
        """Wait the reply's first delay; the reply's number, for its ids."""
        if reply.first_delay:
            time.sleep(reply.first_delay)
        with self.state.lock:
            return next(self.state.ids)  # type: ignore[call-overload]

    def _send_events(self, events: list[bytes], reply: Reply) -> None:
        """A chunked event stream: every event at once, or ``reply.delay`` apart; with
        ``reply.drop_after``, the connection dies after that many (no final chunk)."""
        self._sse_head(reply.headers)
        wire = [_http_chunk(e) for e in events]
        if reply.drop_after is not None:
            for piece in wire[: reply.drop_after]:
                self._write(piece)
                if reply.delay:
                    time.sleep(reply.delay)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if reply.delay:
            for piece in wire:
                self._write(piece)
                time.sleep(reply.delay)
        else:
            # One write: the server's own cost stays out of benchmarks that use it.
            self._write(b"".join(wire))
        self._write(b"0\r\n\r\n")

    def _sse_head(self, headers: Iterable[tuple[str, str]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def _close_soon(self, wait: float) -> None:
        """Close this keep-alive connection once the client's next request starts arriving
        (it is then reading from a dead connection), or after ``wait`` seconds."""
        self.close_connection = True
        try:
            self.wfile.flush()
            select.select([self.connection], [], [], wait)
            self.connection.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _error_body(message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": kind}}


def _param_names(body: dict[str, Any]) -> set[str]:
    """The request's parameters, with nested ones dotted ("reasoning.summary")."""
    return {*body, *(f"{k}.{inner}" for k, v in body.items() if isinstance(v, dict) for inner in v)}


def _hash_vector(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vec[h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _split(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


def _text_pieces(reply: Reply) -> list[str]:
    if reply.chunks:
        n = reply.chunks
        step = max(1, math.ceil(len(reply.text) / n))
        pieces = [reply.text[i * step : (i + 1) * step] for i in range(n)]
        return [p or " " for p in pieces]
    return _split(reply.text, reply.text_chunk)


def _usage(reply: Reply, body: dict[str, Any]) -> dict[str, int]:
    if reply.usage is not None:
        prompt, completion = reply.usage
    else:
        prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
        completion = _completion_tokens(reply)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion_tokens(reply: Reply) -> int:
    """A rough count when none is scripted: words of text, a token per 4 characters of arguments."""
    return len(reply.text.split()) + sum(len(c.arguments_text) // 4 for c in reply.calls)


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.calls else "stop")


def _sse_events(cid: str, model: str, reply: Reply, body: dict[str, Any], *, include_usage: bool,
                azure: bool, quirks: Quirks = Quirks()) -> Iterable[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return json.dumps({
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        })

    if azure:
        yield json.dumps({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                          "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
    yield chunk({"role": "assistant", "content": ""})
    for piece in _text_pieces(reply):
        yield chunk({"content": piece})
    per_call = [_call_deltas(cid, i, call, reply, quirks) for i, call in enumerate(reply.calls)]

    def calls_delta(pieces: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        delta: dict[str, Any] = {"tool_calls": [tc for _, tc in pieces]}
        if quirks.function_call_field:  # the deprecated field, mirroring the first call's piece
            name, tc = pieces[0]
            delta["function_call"] = {"name": name, "arguments": tc["function"]["arguments"]}
        return delta

    if reply.interleave or reply.calls_per_chunk > 1:
        per_chunk = max(1, reply.calls_per_chunk)
        for j in range(max(map(len, per_call), default=0)):
            row = [deltas[j] for deltas in per_call if j < len(deltas)]  # calls still streaming
            for k in range(0, len(row), per_chunk):
                yield chunk(calls_delta(row[k : k + per_chunk]))
    else:
        for deltas in per_call:
            for piece in deltas:
                yield chunk(calls_delta([piece]))
    yield chunk({}, _finish(reply))
    if include_usage:
        yield json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                          "model": model, "choices": [], "usage": _usage(reply, body)})
    yield "[DONE]"


def _call_id(cid: str, i: int, call: Call, quirks: Quirks) -> str:
    if call.id:
        return call.id
    if quirks.invented_ids:  # llama-cpp-python: "call__" + index + name + completion id
        return f"call__{i}_{call.name}_cmpl-{cid[9:]}"
    return f"call_{cid[9:]}_{i}"


def _call_deltas(cid: str, i: int, call: Call, reply: Reply,
                 quirks: Quirks = Quirks()) -> list[tuple[str, dict[str, Any]]]:
    """The ``delta.tool_calls`` entries of call ``i`` (with its name), in order, one per chunk."""
    call_id = _call_id(cid, i, call, quirks)
    head = {"index": i, "id": call_id, "type": "function", "function": {"name": call.name}}
    pieces = _split(call.arguments_text, reply.args_chunk) or [""]
    if reply.empty_head and pieces != [""]:
        pieces.insert(0, "")
    out: list[tuple[str, dict[str, Any]]] = []
    for j, piece in enumerate(pieces):
        if j == 0 or reply.repeat_ids or quirks.repeat_ids:
            tc = {**head, "function": {"name": call.name, "arguments": piece}}
        else:
            tc = {"index": i, "function": {"arguments": piece}}
        if reply.omit_index:
            del tc["index"]
        out.append((call.name, tc))
    return out


def _completion(cid: str, model: str, reply: Reply, body: dict[str, Any],
                quirks: Quirks = Quirks()) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.calls:
        message["tool_calls"] = [
            {"id": _call_id(cid, i, c, quirks), "type": "function",
             "function": {"name": c.name, "arguments": c.arguments_text}}
            for i, c in enumerate(reply.calls)
        ]
        if quirks.function_call_field:
            first = reply.calls[0]
            message["function_call"] = {"name": first.name, "arguments": first.arguments_text}
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply), "logprobs": None}],
        "usage": _usage(reply, body),
    }


# -- the Responses API (``POST /v1/responses``, ``/openai/v1/responses``) ---------------------


def _responses(handler: _Handler, req: RecordedRequest) -> None:
    """One Responses request: the next scripted reply as Responses SSE (or JSON, unstreamed)."""
    reply = handler._next_reply(req)
    body = req.body
    if handler._refused(reply, body, "Unsupported parameter: '{}' is not supported with this model."):
        return
    n = handler._begin(reply)
    events = _ResponsesEvents(f"resp_scripted{n}", body.get("model") or "scripted", reply, body).all()
    if not body.get("stream"):
        handler._json(200, events[-1][1]["response"])
        return
    handler._send_events([f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode() for kind, data in events],
                         reply)


class _ResponsesEvents:
    """The SSE events of one scripted Responses reply, as the API orders them."""

    def __init__(self, rid: str, model: str, reply: Reply, body: dict[str, Any]) -> None:
        self.rid, self.model, self.reply, self.body = rid, model, reply, body
        self.output: list[dict[str, Any]] = []
        self.created = int(time.time())

    def event(self, kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": 0, **data}

    def response(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": self.rid, "object": "response", "created_at": self.created, "status": status,
            "model": self.model, "output": list(self.output), "parallel_tool_calls": True,
            "tool_choice": self.body.get("tool_choice", "auto"), "tools": self.body.get("tools") or [],
            "store": self.body.get("store", True), "error": None, "incomplete_details": None, **extra,
        }

    def all(self) -> list[tuple[str, dict[str, Any]]]:
        r = self.reply
        out = [self.event("response.created", response=self.response("in_progress")),
               self.event("response.in_progress", response=self.response("in_progress"))]
        if r.reasoning:
            out += self._reasoning()
        if r.text:
            out += self._message()
        out += self._calls()
        if r.no_terminal:
            pass
        elif r.failed and r.error_event:
            out.append(self.event("error", code=r.failed[0], message=r.failed[1], param=None))
        elif r.failed:
            error = {"code": r.failed[0], "message": r.failed[1]}
            out.append(self.event("response.failed", response=self.response("failed", error=error)))
        elif r.incomplete:
            out.append(self.event("response.incomplete", response=self.response(
                "incomplete", incomplete_details={"reason": r.incomplete}, usage=self._usage())))
        else:
            out.append(self.event("response.completed", response=self.response("completed", usage=self._usage())))
        for n, (_, data) in enumerate(out):  # built out of order when calls interleave
            data["sequence_number"] = n
        return out

    def _usage(self) -> dict[str, Any]:
        r = self.reply
        if r.usage is not None:
            prompt, completion = r.usage
        else:
            items = self.body.get("input")
            items = [{"content": items}] if isinstance(items, str) else items or []
            prompt = sum(len(str(i.get("content") or i.get("output") or "").split()) for i in items)
            completion = _completion_tokens(r)
        return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion}

    def _reasoning(self) -> list[tuple[str, dict[str, Any]]]:
        oi, item_id = len(self.output), f"rs_{self.rid[5:]}"
        parts = [p for p in self.reply.reasoning.split("\n\n") if p]
        item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
        out = [self.event("response.output_item.added", output_index=oi, item=item)]
        for si, part in enumerate(parts):
            common = {"item_id": item_id, "output_index": oi, "summary_index": si}
            out.append(self.event("response.reasoning_summary_part.added", **common,
                                  part={"type": "summary_text", "text": ""}))
            out += [self.event("response.reasoning_summary_text.delta", **common, delta=piece)
                    for piece in _split(part, self.reply.text_chunk)]
            out.append(self.event("response.reasoning_summary_text.done", **common, text=part))
            out.append(self.event("response.reasoning_summary_part.done", **common,
                                  part={"type": "summary_text", "text": part}))
        done = {**item, "summary": [{"type": "summary_text", "text": p} for p in parts]}
        if self.reply.encrypted_reasoning and "reasoning.encrypted_content" in (self.body.get("include") or ()):
            done["encrypted_content"] = self.reply.encrypted_reasoning
        self.output.append(done)
        out.append(self.event("response.output_item.done", output_index=oi, item=done))
        return out

    def _message(self) -> list[tuple[str, dict[str, Any]]]:
        oi, item_id = len(self.output), f"msg_{self.rid[5:]}"
        text = self.reply.text
        common = {"item_id": item_id, "output_index": oi, "content_index": 0}
        item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": text, "annotations": []}
        out = [self.event("response.output_item.added", output_index=oi, item=item),
               self.event("response.content_part.added", **common, part={**part, "text": ""})]
        out += [self.event("response.output_text.delta", **common, delta=piece, logprobs=[])
                for piece in _text_pieces(self.reply)]
        if not self.reply.incomplete and not self.reply.failed:
            out.append(self.event("response.output_text.done", **common, text=text, logprobs=[]))
            out.append(self.event("response.content_part.done", **common, part=part))
            done = {**item, "status": "completed", "content": [part]}
            self.output.append(done)
            out.append(self.event("response.output_item.done", output_index=oi, item=done))
        return out

    def _calls(self) -> list[tuple[str, dict[str, Any]]]:
        heads, deltas, tails = [], [], []
        for i, call in enumerate(self.reply.calls):
            oi, item_id = len(self.output), f"fc_{self.rid[5:]}_{i}"
            call_id = call.id or f"call_{self.rid[5:]}_{i}"
            item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": call.name,
                    "arguments": "", "status": "in_progress"}
            done = {**item, "arguments": call.arguments_text, "status": "completed"}
            self.output.append(done)
            heads.append(self.event("response.output_item.added", output_index=oi, item=item))
            deltas.append([("response.function_call_arguments.delta",
                            {"item_id": item_id, "output_index": oi, "delta": piece})
                           for piece in _split(call.arguments_text, self.reply.args_chunk)])
            tails.append([self.event("response.function_call_arguments.done", item_id=item_id, output_index=oi,
                                     arguments=call.arguments_text),
                          self.event("response.output_item.done", output_index=oi, item=done)])
        out: list[tuple[str, dict[str, Any]]] = []
        if self.reply.interleave:  # every call opens, then their argument pieces round-robin
            out += heads
            for j in range(max(map(len, deltas), default=0)):
                out += [self.event(d[j][0], **d[j][1]) for d in deltas if j < len(d)]
            for t in tails:
                out += t
        else:
            for head, d, t in zip(heads, deltas, tails):
                out += [head, *(self.event(k, **v) for k, v in d), *t]
        return out
