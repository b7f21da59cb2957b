"""A model's JSON reply without the Markdown code fence models like to wrap it in."""

from __future__ import annotations


def unfenced(text: str) -> str:
    """``text`` stripped, and when it is a fenced block (```json … ```), what is inside: the
    fence line with its language tag dropped, or on a one-line block the tag ``json``."""
    t = text.strip()
    if not t.startswith("```"):
        return t
    t = t[3:]
    tag, newline, rest = t.partition("\n")
    body = rest if newline and (not tag.strip() or tag.strip().isalnum()) else t.removeprefix("json")
    return body.rstrip().removesuffix("```").strip()
