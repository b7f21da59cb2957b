"""The offline answer engine: an extractive answer composed from the evidence in memory.

It is not a language model and says so in its first line. It picks the sentences of the
selected sources that best answer the question (embedding similarity, host keywords, MMR for
variety), arranges them in the primary host's style, cites each with its source number, and
streams the result in chunks through the same provider-event path as a real model.
"""

from __future__ import annotations

import asyncio
import re
from typing import AsyncIterator

import numpy as np

from ..events import Source, Usage
from ..memory.embeddings import Embedder, get_embedder
from ..paradigms import HostParadigm, profile
from .base import ModelRequest, ProviderEvent, ProviderFinish, ProviderText, ProviderUsage

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"[a-z][a-z'-]+")
_STOP = frozenset(
    "a an and are as at be by can could did do does for from has have how i in is it its of on "
    "or our should so than that the their them these they this to was we were what when where "
    "which who why will with within would you your into about over more most".split()
)

# select found nothing in memory relevant to the question (context/relevance.py)
NOTHING_IN_MEMORY = (
    "Your memory store holds nothing on this question, so there is nothing to quote. "
    "Add documents about it with `%research ingest PATH` in a notebook or "
    "`fourhosts ingest PATH` in a terminal, then ask again; a configured model with web "
    "tools can also look further."
)

HEADINGS: dict[HostParadigm, str] = {
    HostParadigm.DOLORES: "Actions the evidence supports",
    HostParadigm.TEDDY: "What the evidence covers: stakeholders, risks and safeguards",
    HostParadigm.BERNARD: "What the evidence says, point by point",
    HostParadigm.MAEVE: "Leverage points in the evidence",
}


def split_sentences(text: str) -> list[str]:
    """Sentences of prose, and each list item as its own candidate."""
    out: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            out.extend(_SENTENCE.split(" ".join(prose)))
            prose.clear()

    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            flush()
        elif line[:2] in ("- ", "* ", "• ") or re.match(r"\d+[.)] ", line):
            flush()
            item = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", line).rstrip(";,")
            if len(item.split()) >= 8:  # a short item is a fragment, not a quotable claim
                out.append(item)
        else:
            prose.append(line)
    flush()
    return [s.strip() for s in out if len(s.split()) >= 5]


def _terms(text: str) -> set[str]:
    """Content words, cut to a crude stem so 'protects' meets 'protection'."""
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


class OfflineProvider:
    """Extractive, offline, deterministic. ``stream`` yields ProviderEvents."""

    name = "offline"
    model = "extractive"
    offline = True

    def __init__(self, embedder: Embedder | None = None, *, max_sentences: int = 8, chunk_words: int = 6):
        self._embedder = embedder
        self.max_sentences = max_sentences
        self.chunk_words = chunk_words

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    async def aclose(self) -> None:
        return None

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        text = await asyncio.to_thread(self.compose, request)
        words = text.split(" ")
        for i in range(0, len(words), self.chunk_words):
            piece = " ".join(words[i : i + self.chunk_words])
            yield ProviderText(piece + (" " if i + self.chunk_words < len(words) else ""))
            await asyncio.sleep(0)
        yield ProviderUsage(Usage())
        yield ProviderFinish("stop")

    # -- composing ---------------------------------------------------------------------------

    def pick(self, question: str, sources: tuple[Source, ...], host: HostParadigm) -> list[tuple[str, int]]:
        """(sentence, source number) pairs, best first, at most 3 per source."""
        cands: list[tuple[str, int]] = []
        for src in sources:
            cands.extend((s, src.n) for s in split_sentences(src.text))
        if not cands:
            return []
        keep = set(profile(host).keep_keywords)
        qterms = _terms(question)
        vecs = self.embedder.embed([question] + [c[0] for c in cands])
        q, m = vecs[0], vecs[1:]
        rel = m @ q
        for i, (sent, _) in enumerate(cands):
            words = _terms(sent)
            rel[i] += 0.04 * len(words & qterms) + 0.03 * len(words & keep)
        # Quote only sentences close to the best match: an off-topic source stays uncited.
        floor = max(0.15, 0.55 * float(rel.max()))
        rel[rel < floor] = -np.inf
        chosen: list[int] = []
        per_source: dict[int, int] = {}
        limit = min(self.max_sentences, len(cands))
        while len(chosen) < limit:
            if chosen:
                redundancy = (m @ m[chosen].T).max(axis=1)
                mmr = 0.7 * rel - 0.3 * redundancy
            else:
                mmr = rel.copy()
            mmr[chosen] = -np.inf
            mmr[~np.isfinite(rel)] = -np.inf
            for i, (_, n) in enumerate(cands):
                if per_source.get(n, 0) >= 3:
                    mmr[i] = -np.inf
            best = int(np.argmax(mmr))
            if not np.isfinite(mmr[best]):
                break
            chosen.append(best)
            per_source[cands[best][1]] = per_source.get(cands[best][1], 0) + 1
        return [cands[i] for i in chosen]

    def compose(self, request: ModelRequest) -> str:
        c = request.classification
        host = c.primary if c else HostParadigm.BERNARD
        p = profile(host)
        lead = (
            f"*Offline extractive answer — no language model was used. These sentences are "
            f"quoted from your memory store, chosen for this question and arranged in "
            f"{p.label}'s style ({p.stance.lower()}). Configure a model for a written synthesis.*"
        )
        if not request.sources:
            return (
                lead
                + "\n\n" + NOTHING_IN_MEMORY
            )
        picked = self.pick(request.question, request.sources, host)
        if not picked:
            return lead + "\n\nThe selected sources contain no complete sentences to quote."
        lines = [lead, "", f"**{HEADINGS[host]}**", ""]
        style = p.compress_style
        if style == "bullets":
            lines += [f"- {s} [{n}]" for s, n in picked]
        elif style == "numbered":
            lines += [f"{i}. {s} [{n}]" for i, (s, n) in enumerate(picked, 1)]
        elif style == "bold":  # the first words of each point in bold
            for s, n in picked:
                words = s.split()
                lines.append(f"- **{' '.join(words[:4])}** {' '.join(words[4:])} [{n}]")
        else:  # prose: group sentences into paragraphs by source
            by_source: dict[int, list[str]] = {}
            for s, n in picked:
                by_source.setdefault(n, []).append(s)
            for n, sents in by_source.items():
                lines += [" ".join(sents) + f" [{n}]", ""]
        covered = set().union(*(_terms(s) for s, _ in picked))
        missing = [
            w
            for w in dict.fromkeys(_WORD.findall(request.question.lower()))
            if w not in _STOP and len(w) > 2 and w[:6] not in covered
        ]
        if missing:
            lines += [
                "",
                "*Words of the question the quoted evidence does not mention: "
                + ", ".join(missing[:8])
                + ".*",
            ]
        return "\n".join(lines).rstrip() + "\n"
