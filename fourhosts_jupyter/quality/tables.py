"""The data tables of healing and collaboration (``data/quality/*.json``), loaded once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..paradigms import HostParadigm


@dataclass(frozen=True)
class Rule:
    """Brief §2.7: ``asking`` asks ``helping`` when its confidence is below ``threshold``."""

    asking: HostParadigm
    helping: HostParadigm
    reasons: tuple[str, ...]
    threshold: float


def _load(name: str) -> dict[str, Any]:
    return json.loads(resources.files("fourhosts_jupyter").joinpath(f"data/quality/{name}").read_text("utf-8"))


@lru_cache(maxsize=1)
def collaboration() -> dict[str, Any]:
    data = _load("collaboration.json")
    data["rules"] = [
        Rule(HostParadigm(r["asking"]), HostParadigm(r["helping"]), tuple(r["reasons"]), float(r["threshold"]))
        for r in data["rules"]
    ]
    data["reason_patterns"] = {k: re.compile(v, re.I) for k, v in data["reason_patterns"].items()}
    return data


@lru_cache(maxsize=1)
def healing() -> dict[str, Any]:
    return _load("healing.json")


def rules() -> list[Rule]:
    return list(collaboration()["rules"])
