"""Which built-in tools each host is offered, from the brief's preferences (§1.2).

The profiles (``PROFILES[host].tools``) keep the original's preference names; the ones the
original only named are fulfilled by the real tools standing for them here: its
``advanced_web_search`` by ``search_web`` and ``read_page`` (a search is only useful if the
pages it finds can be read), its ``search_academic_sources`` by ``search_papers`` and
``read_page`` (to read a paper's page or PDF). So Dolores, Teddy and Maeve search the web,
Teddy and Bernard search the literature, and all four may read a page. A tool that is not
registered (its package missing, not configured) is simply not offered.
"""

from __future__ import annotations

from ..paradigms import PROFILES, HostParadigm

STANDS_FOR: dict[str, tuple[str, ...]] = {
    "advanced_web_search": ("search_web", "read_page"),
    "search_academic_sources": ("search_papers", "read_page"),
}


def host_tools(host: HostParadigm | str) -> tuple[str, ...]:
    """The built-in tool names ``host`` may be offered, in its profile's order."""
    names: list[str] = []
    for name in PROFILES[HostParadigm.parse(host)].tools:
        names.extend(STANDS_FOR.get(name, (name,)))
    return tuple(dict.fromkeys(names))
