"""A run's sources for a reference manager: BibTeX, CSL-JSON and APA.

    fh.cite(run_id, "bibtex")            # or "csl-json", "apa"
    %research sources RUN_ID --format bibtex|csl-json|apa

What a run cites is read back from its run log, so an old run exports the same way:

- the passages selected from memory that the answer cites by number (``[1]``, ``[2, 3]``); their
  stored metadata says whether one is a paper, a web page or a file (authors, year, DOI, the
  published and fetched-at dates);
- every page the run read (``read_page`` results): a web page, or a paper when the page is one
  of the papers its ``search_papers`` calls found;
- the papers from ``search_papers`` that the answer names (by DOI, arXiv id, URL or title).

Papers become ``@article`` (authors, year, journal, DOI, arXiv eprint), pages ``@online`` (url,
urldate = the day it was fetched), files ``@misc``. Every field is escaped for BibTeX
(``& % $ # _ { } ~ ^ \\``); a URL that is not http(s) is left out.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Iterable

from .errors import ConfigError

STYLES = ("bibtex", "csl-json", "apa")


@dataclass(frozen=True)
class Reference:
    """One source of a run, as a reference manager sees it."""

    kind: str  # article | online | document
    title: str
    url: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    date: str = ""  # published, ISO (YYYY, YYYY-MM or YYYY-MM-DD)
    accessed: str = ""  # the day it was fetched, ISO
    venue: str = ""  # journal, or the site of a page
    doi: str = ""
    arxiv_id: str = ""
    origin: str = ""  # a file's path, for documents

    def identity(self) -> str:
        return f"doi:{self.doi}" if self.doi else f"arxiv:{self.arxiv_id}" if self.arxiv_id else \
            f"url:{self.url}" if self.url else f"origin:{self.origin or self.title}"


# -- collecting a run's references --------------------------------------------------------------


def run_references(run: dict[str, Any], store: Any = None) -> list[Reference]:
    """The references of a stored run (``Store.get_run``), deduplicated, in citation order."""
    answer = run.get("answer") or ""
    cited = cited_numbers(answer)
    selected = [s for s in run.get("sources") or [] if _int(s.get("n")) in cited]
    meta = _memory_metadata(store, [s.get("id", "") for s in selected])
    refs: list[Reference] = [_from_source(s, meta.get(s.get("id", ""), {})) for s in selected]
    papers: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    for ev in run.get("events") or []:
        payload = ev.get("payload") or {}
        if ev.get("type") != "tool_call_finished" or not isinstance(payload.get("result"), dict):
            continue
        if payload.get("name") == "search_papers":
            papers.extend(p for p in payload["result"].get("papers") or [] if isinstance(p, dict))
        elif payload.get("name") == "read_page":
            pages.append(payload["result"])
    run_day = _day(str(run.get("started_at") or ""))  # a page read by the run was fetched that day
    used: set[int] = set()
    for page in pages:
        i = _paper_for_url(papers, str(page.get("url") or ""))
        accessed = _day(page.get("fetched_at")) or run_day
        if i is not None:
            used.add(i)
            refs.append(_from_paper(papers[i], accessed=accessed))
        else:
            refs.append(_from_page(page, accessed))
    for i, p in enumerate(papers):
        if i not in used and _named_in(p, answer):
            used.add(i)
            refs.append(_from_paper(p))
    return _dedupe(refs)


_CITE = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")


def group_numbers(group: str) -> list[int]:
    """The numbers of one citation group's inside, in order: ``1, 3`` → [1, 3]; ``2-4`` →
    [2, 3, 4] (a range of 100 or more is taken as its two ends)."""
    nums: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group):
        ends = [int(x) for x in re.split(r"\s*[–-]\s*", part) if x]
        if len(ends) == 2 and 0 < ends[1] - ends[0] < 100:
            nums.extend(range(ends[0], ends[1] + 1))
        else:
            nums.extend(ends)
    return nums


def cited_numbers(answer: str) -> set[int]:
    """The source numbers an answer cites: ``[1]``, ``[1, 3]``, ``[2-4]``."""
    return {n for group in _CITE.findall(answer) for n in group_numbers(group)}


def _memory_metadata(store: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    ids = [i for i in ids if i]
    if store is None or not ids:
        return {}
    with store.connect() as con:
        rows = con.execute(
            "SELECT id, metadata, created_at FROM memories WHERE list_contains(?, id)", [ids]
        ).fetchall()
    out = {}
    for mid, metadata, created in rows:
        m = json.loads(metadata) if isinstance(metadata, str) else dict(metadata or {})
        m.setdefault("fetched_at", created.isoformat() if created else "")
        out[mid] = m
    return out


def _from_source(s: dict[str, Any], m: dict[str, Any]) -> Reference:
    origin = str(s.get("origin") or "")
    url = _safe_url(str(m.get("url") or origin))
    title = str(s.get("title") or origin)
    if m.get("kind") == "paper":
        return Reference(
            "article", title, url, tuple(m.get("authors") or ()), _int(m.get("year")),
            str(m.get("published") or ""), _day(m.get("fetched_at")), str(m.get("site") or ""),
            str(m.get("doi") or ""), str(m.get("arxiv_id") or ""),
        )
    if url:
        author = str(m.get("author") or "")
        return Reference(
            "online", title, url, (author,) if author else (), _year(m.get("published")),
            str(m.get("published") or ""), _day(m.get("fetched_at")), str(m.get("site") or ""),
        )
    from .memory.origins import display_origin

    return Reference("document", title, origin=display_origin(origin))


def _from_paper(p: dict[str, Any], accessed: str = "") -> Reference:
    return Reference(
        "article", str(p.get("title") or ""), _safe_url(str(p.get("url") or "")), tuple(p.get("authors") or ()),
        _int(p.get("year")), str(p.get("published") or ""), accessed, str(p.get("venue") or ""),
        str(p.get("doi") or ""), str(p.get("arxiv_id") or ""),
    )


def _from_page(page: dict[str, Any], accessed: str = "") -> Reference:
    published = str(page.get("published") or page.get("date") or "")
    author = str(page.get("author") or "")
    url = _safe_url(str(page.get("url") or ""))
    return Reference(
        "online", str(page.get("title") or url), url, (author,) if author else (), _year(published),
        published, accessed, str(page.get("site") or ""),
    )


def _paper_for_url(papers: list[dict[str, Any]], url: str) -> int | None:
    from .tools.papers import arxiv_id_from, normalize_doi

    aid, doi = arxiv_id_from(url), normalize_doi(url)
    for i, p in enumerate(papers):
        if url and url in (p.get("url"), p.get("pdf_url")):
            return i
        if (aid and aid == p.get("arxiv_id")) or (doi and doi == p.get("doi")):
            return i
    return None


def _named_in(p: dict[str, Any], answer: str) -> bool:
    low = answer.lower()
    keys = [p.get("doi"), p.get("arxiv_id"), p.get("url"), p.get("title")]
    return any(k and str(k).lower() in low for k in keys)


def _dedupe(refs: Iterable[Reference]) -> list[Reference]:
    out: dict[str, Reference] = {}
    for r in refs:
        key = r.identity()
        if key in out:  # the richer record wins, the first position stays
            old = out[key]
            out[key] = replace(old, **{f: getattr(r, f) for f in ("authors", "year", "date", "accessed", "venue",
                                                                  "doi", "arxiv_id", "url")
                                       if not getattr(old, f) and getattr(r, f)})
        else:
            out[key] = r
    return list(out.values())


# -- BibTeX -------------------------------------------------------------------------------------

_BIB_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
_BIB_RE = re.compile(r"[&%$#_{}~^\\]")


def bibtex_escape(text: str) -> str:
    """Text safe inside a BibTeX field: specials escaped, line breaks folded."""
    return _BIB_RE.sub(lambda m: _BIB_SPECIAL[m.group(0)], " ".join(str(text).split()))


def _bib_url(url: str) -> str:
    # url fields are read verbatim; only what would break the braces or the line is encoded
    return url.replace("\\", "%5C").replace("{", "%7B").replace("}", "%7D").replace(" ", "%20")


def to_bibtex(refs: list[Reference]) -> str:
    keys = _keys(refs)
    entries = []
    for key, r in zip(keys, refs):
        fields: list[tuple[str, str]] = []
        if r.authors:
            fields.append(("author", " and ".join(_bib_name(a) for a in r.authors)))
        fields.append(("title", "{" + bibtex_escape(r.title) + "}"))  # inner braces keep its capitals
        if r.kind == "article":
            entry = "article"
            fields.append(("journal", bibtex_escape(r.venue or ("arXiv" if r.arxiv_id else ""))))
            if r.year:
                fields.append(("year", str(r.year)))
            if r.doi:
                fields.append(("doi", bibtex_escape(r.doi)))
            if r.arxiv_id:
                fields += [("eprint", bibtex_escape(r.arxiv_id)), ("archiveprefix", "arXiv")]
            if r.url:
                fields.append(("url", _bib_url(r.url)))
            if r.accessed:
                fields.append(("urldate", r.accessed))
        elif r.kind == "online":
            entry = "online"
            if r.venue:
                fields.append(("organization", bibtex_escape(r.venue)))
            if r.date:
                fields.append(("date", bibtex_escape(r.date)))
            elif r.year:
                fields.append(("year", str(r.year)))
            fields.append(("url", _bib_url(r.url)))
            if r.accessed:
                fields.append(("urldate", r.accessed))
        else:
            entry = "misc"
            fields.append(("howpublished", bibtex_escape(r.origin)))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
        entries.append(f"@{entry}{{{key},\n{body}\n}}")
    return "\n\n".join(entries) + ("\n" if entries else "")


def _bib_name(name: str) -> str:
    family, given = (bibtex_escape(x) for x in _split_name(name))
    if is_organisation(name):
        return "{" + family + "}"  # braced: BibTeX must not split it into given and family names
    return f"{family}, {given}" if given else family


def _keys(refs: list[Reference]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for r in refs:
        family = _split_name(r.authors[0])[0] if r.authors else (r.venue or "")
        words = [w for w in re.findall(r"[A-Za-z0-9]+", _ascii(r.title)) if len(w) > 3]
        base = (re.sub(r"[^a-z0-9]", "", _ascii(family).lower()) + (str(r.year) if r.year else "")
                + (words[0].lower() if words else "")) or "source"
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}{chr(ord('a') + n - 1) if n <= 26 else n}")
    return out


# -- CSL-JSON -----------------------------------------------------------------------------------


def to_csl(refs: list[Reference]) -> list[dict[str, Any]]:
    items = []
    for key, r in zip(_keys(refs), refs):
        if r.kind == "article":
            kind = "article" if not r.venue or "arxiv" in r.venue.lower() else "article-journal"
        else:
            kind = "webpage" if r.kind == "online" else "document"
        item: dict[str, Any] = {"id": key, "type": kind, "title": r.title}
        if r.authors:
            item["author"] = [dict(zip(("family", "given"), _split_name(a))) if _split_name(a)[1]
                              else {"literal": a} for a in r.authors]
        issued = _date_parts(r.date) or ([[r.year]] if r.year else None)
        if issued:
            item["issued"] = {"date-parts": issued}
        if r.accessed and _date_parts(r.accessed):
            item["accessed"] = {"date-parts": _date_parts(r.accessed)}
        if r.venue:
            item["container-title"] = r.venue
        if r.doi:
            item["DOI"] = r.doi
        if r.url:
            item["URL"] = r.url
        if r.arxiv_id:
            item["number"] = f"arXiv:{r.arxiv_id}"
        if r.kind == "document" and r.origin:
            item["source"] = r.origin
        items.append(item)
    return items


def _date_parts(iso: str) -> list[list[int]] | None:
    m = re.match(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", iso or "")
    return [[int(x) for x in m.groups() if x]] if m else None


# -- APA 7 ----------------------------------------------------------------------------------------


def to_apa(refs: list[Reference]) -> str:
    """One APA 7 reference per line, sorted by first author as a reference list is."""
    lines = [_apa(r) for r in refs]
    return "\n".join(sorted(lines, key=lambda s: _ascii(s).lower())) + ("\n" if lines else "")


def _apa(r: Reference) -> str:
    authors = _apa_authors(r.authors)
    if authors and not authors.endswith("."):
        authors += "."  # a group author ends its element as initials do: "Office. (2025)."
    when = f"({_apa_date(r)})"
    title = r.title.rstrip(".")
    if r.kind == "article":
        venue = r.venue or ("arXiv" if r.arxiv_id else "")
        link = f"https://doi.org/{r.doi}" if r.doi else r.url
        head = f"{authors} {when}. {title}." if authors else f"{title}. {when}."
        return " ".join(x for x in (head, f"{venue}." if venue else "", link) if x)
    if r.kind == "online":
        head = f"{authors} {when}. {title}." if authors else f"{title}. {when}."
        site = f"{r.venue}." if r.venue and r.venue not in authors else ""
        got = f"Retrieved {_long_date(r.accessed)}, from {r.url}" if r.accessed else r.url
        return " ".join(x for x in (head, site, got) if x)
    return f"{title}. {when}. {r.origin}".strip()


def _apa_date(r: Reference) -> str:
    if r.kind == "online" and r.date and len(r.date) >= 10:
        return f"{r.date[:4]}, {_long_date(r.date).split(',')[0]}"
    return str(r.year or (r.date[:4] if r.date else "n.d."))


def _apa_authors(authors: tuple[str, ...]) -> str:
    names = []
    for a in authors[:20]:
        family, given = _split_name(a)
        initials = " ".join(f"{p[0]}." for p in re.split(r"[\s]+", given) if p)
        names.append(f"{family}, {initials}" if initials else family)
    if len(names) <= 1:
        return names[0] if names else ""
    return ", ".join(names[:-1]) + ", & " + names[-1]


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _long_date(iso: str) -> str:
    """2026-11-30 → November 30, 2026."""
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", iso or "")
    if not m:
        return iso
    y, mo, d = (int(x) for x in m.groups())
    return f"{_MONTHS[mo - 1]} {d}, {y}"


# -- helpers ------------------------------------------------------------------------------------


_ORG_WORDS = {"office", "department", "ministry", "agency", "council", "association", "institute",
              "organization", "organisation", "administration", "foundation", "city", "bureau",
              "commission", "university", "society", "team", "group", "centre", "center", "authority",
              "board", "committee", "inc", "inc.", "ltd", "ltd.", "news", "press", "staff"}


def is_organisation(name: str) -> bool:
    words = name.lower().replace(",", " ").split()
    return len(words) > 4 or any(w in _ORG_WORDS for w in words)


def _split_name(name: str) -> tuple[str, str]:
    """(family, given) from "Given Family" or "Family, Given"; an organisation stays whole."""
    name = " ".join(name.split())
    if is_organisation(name):
        return name, ""
    if "," in name:
        family, given = (x.strip() for x in name.split(",", 1))
        return family, given
    parts = name.split(" ")
    if len(parts) == 1:
        return name, ""
    # particles stay with the family name: van der Berg, de la Cruz
    i = len(parts) - 1
    while i > 1 and parts[i - 1].lower() in {"van", "von", "der", "de", "la", "del", "da", "di", "le"}:
        i -= 1
    return " ".join(parts[i:]), " ".join(parts[:i])


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _safe_url(url: str) -> str:
    """The URL if it is http(s), else '' (a ``javascript:`` origin is no link)."""
    url = url.strip()
    return url if re.match(r"^https?://[^\s/]", url, re.I) else ""


def _day(value: Any) -> str:
    text = str(value or "")
    return text[:10] if re.match(r"^\d{4}-\d{2}-\d{2}", text) else ""


def _year(value: Any) -> int | None:
    m = re.match(r"^(\d{4})", str(value or ""))
    return int(m.group(1)) if m else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


# -- the public face ----------------------------------------------------------------------------


def format_references(refs: list[Reference], style: str) -> str:
    style = check_style(style)
    if style == "bibtex":
        return to_bibtex(refs)
    if style == "csl-json":
        return json.dumps(to_csl(refs), ensure_ascii=False, indent=2) + "\n"
    return to_apa(refs)


def check_style(style: str) -> str:
    s = str(style).strip().lower().replace("_", "-")
    s = {"csl": "csl-json", "csljson": "csl-json", "bib": "bibtex"}.get(s, s)
    if s not in STYLES:
        raise ConfigError(f"unknown citation style {style!r}: use one of {', '.join(STYLES)}")
    return s


class Citations:
    """A run's exported sources; shows as text (``text/plain``) and as a preformatted block."""

    def __init__(self, text: str, style: str, run_id: str, count: int) -> None:
        self.text, self.style, self.run_id, self.count = text, style, run_id, count

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from html import escape

        head = f"{self.count} source{'s' if self.count != 1 else ''} of run {self.run_id} ({self.style})"
        return {
            "text/plain": self.text or f"(run {self.run_id} has no sources)",
            "text/html": f'<div class="fh-cite"><div style="font-weight:600">{escape(head)}</div>'
                         f"<pre>{escape(self.text)}</pre></div>",
        }


def cite(run_id: str, style: str = "bibtex", *, store: Any = None) -> Citations:
    """Export the sources of run ``run_id`` as ``bibtex``, ``csl-json`` or ``apa``."""
    style = check_style(style)
    if store is None or isinstance(store, str):
        from .config import Settings
        from .memory.store import Store

        store = Store(Settings.from_env(store_path=store).resolved_store_path())
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError(f"no run {run_id!r} in the store: list runs with  %research runs  or  fourhosts runs")
    refs = run_references(run, store)
    return Citations(format_references(refs, style), style, run["id"], len(refs))
