"""A fetched page as text and metadata: trafilatura for HTML, pypdf for PDF, plain text as is.

    page = extract(fetched)      # -> Page(url, title, author, date, site, text, content_type)

Anything else (images, archives, octet streams) is refused with :class:`UnsupportedContent`;
``fetch(..., allowed_types=READABLE_TYPES)`` already refuses them from the headers, and a
missing or generic content type is sniffed from the first bytes here.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UnsupportedContent, WebError
from .fetch import HTML_TYPES, PDF_TYPES, TEXT_TYPES, Fetched

MAX_PDF_PAGES = 60


@dataclass(frozen=True)
class Page:
    url: str
    text: str
    title: str = ""
    author: str = ""
    date: str | None = None  # ISO date the page gives (published or last modified)
    site: str = ""
    content_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sniff(fetched: Fetched) -> str:
    """The media type to parse ``fetched`` as: the declared one, or one guessed from its bytes."""
    declared = fetched.content_type
    if declared in HTML_TYPES + PDF_TYPES + TEXT_TYPES:
        return declared
    head = fetched.body[:1024].lstrip().lower()
    if head.startswith(b"%pdf-"):
        return "application/pdf"
    if head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<body" in head:
        return "text/html"
    if declared in ("", "application/octet-stream") and head and _looks_like_text(fetched.body[:4096]):
        return "text/plain"
    raise UnsupportedContent(
        f"{fetched.url} is {declared or 'of unknown type'} and not a readable page: only HTML, "
        f"PDF and plain text can be read"
    )


def extract(fetched: Fetched) -> Page:
    if fetched.status >= 400:
        raise WebError(f"{fetched.url} answered HTTP {fetched.status}: the page could not be read")
    kind = sniff(fetched)
    if kind in PDF_TYPES:
        page = _pdf(fetched)
    elif kind in HTML_TYPES:
        page = _html(fetched)
    else:
        page = Page(url=fetched.url, text=_decode(fetched).strip(), content_type=kind,
                    site=_host(fetched.url))
    if not page.text.strip():
        raise WebError(f"{fetched.url} has no readable text (an empty page, or text only in images)")
    return page


def _html(fetched: Fetched) -> Page:
    import trafilatura

    raw = trafilatura.extract(
        fetched.body, url=fetched.url, output_format="json", with_metadata=True,
        include_comments=False, include_tables=True, favor_precision=True,
    )
    if not raw:  # nothing trafilatura calls main text: fall back to its recall-oriented mode
        raw = trafilatura.extract(fetched.body, url=fetched.url, output_format="json",
                                  with_metadata=True, favor_recall=True)
    if not raw:
        raise WebError(f"{fetched.url} has no readable main text")
    data = json.loads(raw)
    return Page(
        url=fetched.url,
        text=data.get("text") or "",
        title=data.get("title") or "",
        author=data.get("author") or "",
        date=data.get("date") or None,
        site=data.get("source-hostname") or data.get("hostname") or _host(fetched.url),
        content_type="text/html",
    )


def _pdf(fetched: Fetched) -> Page:
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(fetched.body))
        if reader.is_encrypted:
            raise WebError(f"{fetched.url} is an encrypted PDF: it cannot be read")
        texts = [(p.extract_text() or "") for p in reader.pages[:MAX_PDF_PAGES]]
        meta = reader.metadata or {}
        title = str(getattr(meta, "title", None) or "")
        author = str(getattr(meta, "author", None) or "")
        created = getattr(meta, "creation_date", None)
    except pypdf.errors.PyPdfError as exc:
        raise WebError(f"{fetched.url} is not a readable PDF ({exc})") from None
    date = created.date().isoformat() if isinstance(created, dt.datetime) else None
    return Page(url=fetched.url, text="\n\n".join(t.strip() for t in texts if t.strip()),
                title=title, author=author, date=date, site=_host(fetched.url),
                content_type="application/pdf")


def _decode(fetched: Fetched) -> str:
    try:
        return fetched.body.decode(fetched.charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return fetched.body.decode("utf-8", errors="replace")


def _looks_like_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(sample) - 4  # only a character cut at the end
    return True


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""
