"""A blend's citations: every ``[n]`` of a host's part renumbered to the merged source list.

Each host's answer cites its own source list (``[1]`` is that host's first source); the blend
shows one merged, deduplicated list (``merged_sources``). Before the parts are joined (offline
sections) or handed to the model (the synthesis keeps their citations), each part's numbers are
mapped through the source's identity (``source_key``) to its number in the merged list, so every
``[n]`` of the unified answer points at the right entry. A number whose source did not make the
merged list (or that the host never had) is dropped rather than left pointing at another source.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from .citations import group_numbers
from .comparison import Comparison, source_key
from .events import Source
from .paradigms import HostParadigm

# The forms the engines write: [1], [1, 3], [2-4], [2–4]
_GROUP = re.compile(r"([ \t]*)\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")


def source_maps(parts: Comparison, merged: Sequence[Source]) -> dict[HostParadigm, dict[int, int]]:
    """Per host: its own citation number → the number of the same source in ``merged``."""
    where = {source_key(s): s.n for s in merged}
    out: dict[HostParadigm, dict[int, int]] = {}
    for h, r in parts.results.items():
        out[h] = {s.n: where[source_key(s)] for s in r.sources if source_key(s) in where}
    return out


def renumber(text: str, mapping: Mapping[int, int]) -> str:
    """``text`` with every citation group's numbers mapped (sorted, deduplicated, joined by
    ", "); a group left with no number is removed with the space before it."""
    def sub(m: re.Match[str]) -> str:
        new = sorted({mapping[n] for n in group_numbers(m.group(2)) if n in mapping})
        return f"{m.group(1)}[{', '.join(map(str, new))}]" if new else ""

    return _GROUP.sub(sub, text)


def renumbered_texts(parts: Comparison, merged: Sequence[Source]) -> dict[HostParadigm, str]:
    """Every host's text with its citations pointing into ``merged``."""
    maps = source_maps(parts, merged)
    return {h: renumber(r.text, maps.get(h, {})) for h, r in parts.results.items()}


__all__ = ["renumber", "renumbered_texts", "source_maps"]
