"""Loopback servers that replay outside services' responses, for tests and tutorials.

No outside service is reachable from the tests; the web tools are pointed at a
:class:`ReplayServer` on ``127.0.0.1`` through their base-URL variables instead
(``FOURHOSTS_ARXIV_URL``, ``FOURHOSTS_OPENALEX_URL``, …). The bundled replies in
``fourhosts_jupyter/data/web/`` are in each service's real wire format (an arXiv API Atom feed,
an OpenAlex ``/works`` page with inverted-index abstracts); their papers are written for the
tests, not copied from the services.

    server = ReplayServer().start()
    server.route("/arxiv/query", ReplayServer.file("arxiv_speed.atom"))
    server.fail("/openalex/works", 500)          # the next requests answer HTTP 500
    papers_env(server)                           # FOURHOSTS_ARXIV_URL / _OPENALEX_URL → it
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Canned:
    """One reply: status, content type, body and extra headers."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seen:
    """A request the server received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(default_factory=dict)


_TYPES = {".atom": "application/atom+xml; charset=utf-8", ".json": "application/json",
          ".html": "text/html; charset=utf-8", ".pdf": "application/pdf"}


class ReplayServer:
    """A threaded HTTP server on 127.0.0.1 answering GETs from a table of canned replies."""

    def __init__(self) -> None:
        self.routes: dict[str, Canned] = {}
        self.failures: dict[str, Canned] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @staticmethod
    def file(name: str, **options: Any) -> Canned:
        """A bundled reply from ``fourhosts_jupyter/data/web/NAME`` (type from its suffix)."""
        body = resources.files("fourhosts_jupyter.data").joinpath("web", name).read_bytes()
        suffix = name[name.rfind("."):]
        return Canned(body, options.pop("content_type", _TYPES.get(suffix, "application/octet-stream")), **options)

    def route(self, path: str, reply: Canned | str | bytes, content_type: str = "text/html; charset=utf-8") -> ReplayServer:
        if not isinstance(reply, Canned):
            reply = Canned(reply.encode() if isinstance(reply, str) else reply, content_type)
        with self._lock:
            self.routes[path] = reply
        return self

    def fail(self, path: str, status: int = 500, message: str = "Internal Server Error") -> ReplayServer:
        """Answer ``path`` with an error until :meth:`heal`."""
        with self._lock:
            self.failures[path] = Canned(message.encode(), "text/plain", status)
        return self

    def heal(self, path: str | None = None) -> ReplayServer:
        with self._lock:
            if path is None:
                self.failures.clear()
            else:
                self.failures.pop(path, None)
        return self

    def hits(self, path: str) -> int:
        """How many requests ``path`` received."""
        with self._lock:
            return sum(1 for s in self.seen if s.path == path)

    def start(self) -> ReplayServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                with server._lock:
                    server.seen.append(Seen(parts.path, parse_qs(parts.query), dict(self.headers)))
                    reply = server.failures.get(parts.path) or server.routes.get(parts.path)
                if reply is None:
                    reply = Canned(b"Not Found", "text/plain", 404)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for k, v in reply.headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(reply.body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="fh-replay", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ReplayServer:
        return self if self._httpd else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.root + path


ARXIV_PATH = "/arxiv/api/query"
OPENALEX_PATH = "/openalex/works"


def papers_server(server: ReplayServer | None = None) -> ReplayServer:
    """A started server replaying the bundled arXiv and OpenAlex searches, with the
    environment pointing ``search_papers`` at it."""
    server = server or ReplayServer().start()
    server.route(ARXIV_PATH, ReplayServer.file("arxiv_speed.atom"))
    server.route(OPENALEX_PATH, ReplayServer.file("openalex_speed.json"))
    os.environ["FOURHOSTS_ARXIV_URL"] = server.url(ARXIV_PATH)
    os.environ["FOURHOSTS_OPENALEX_URL"] = server.url("/openalex")
    return server


SEARXNG_PATH = "/searxng/search"
PAGES = {"/vision-zero.html": "vision-zero.html", "/speed-cameras.html": "speed-cameras.html"}


def searxng_reply(server: ReplayServer) -> Canned:
    """A SearXNG ``format=json`` answer whose results are the pages this server holds."""
    import json

    results = [
        {"url": server.url("/vision-zero.html"), "title": "Vision Zero Action Plan 2025–2030 | City of Example",
         "content": "The city will halve deaths and serious injuries on its streets by 2030 …",
         "engine": "bing", "engines": ["bing", "duckduckgo"], "positions": [1, 2], "score": 3.0,
         "category": "general", "publishedDate": "2025-02-14T09:00:00"},
        {"url": server.url("/speed-cameras.html"),
         "title": "Speed cameras cut serious crashes by a third, three-year review finds",
         "content": "Fixed and average-speed cameras reduced fatal and serious-injury crashes by 34% …",
         "engine": "duckduckgo", "engines": ["duckduckgo"], "positions": [3], "score": 1.0,
         "category": "general", "publishedDate": "2026-09-03T07:30:00"},
    ]
    body = {"query": "", "number_of_results": 0, "results": results, "answers": [], "corrections": [],
            "infoboxes": [], "suggestions": ["vision zero speed limits"], "unresponsive_engines": []}
    return Canned(json.dumps(body, ensure_ascii=False).encode(), "application/json")


def web_research_server(server: ReplayServer | None = None) -> ReplayServer:
    """One started server replaying a SearXNG search, two HTML pages (with navigation, cookie
    banner and footer boilerplate), an arXiv feed and an OpenAlex search; the environment points
    search_web (SearXNG only: no keyless DuckDuckGo fallback to the real internet), read_page
    and search_papers at it. Loopback pages are private addresses: reading them needs
    ``FOURHOSTS_FETCH_ALLOW_PRIVATE=1``, which the caller sets on purpose."""
    server = papers_server(server)
    for path, name in PAGES.items():
        server.route(path, ReplayServer.file(name))
    server.route(SEARXNG_PATH, searxng_reply(server))
    os.environ["FOURHOSTS_SEARXNG_URL"] = server.url("/searxng")
    os.environ["FOURHOSTS_SEARCH_BACKENDS"] = "searxng"
    return server
