"""The four hosts and their profiles: one table of data, in one place.

Numbers and words come from the original system (see the domain brief §1.2, §3, §3.4, §4.4,
§4.5); where the original was inconsistent the choice is noted beside the value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class HostParadigm(enum.StrEnum):
    """The four hosts, always in this order."""

    DOLORES = "dolores"
    TEDDY = "teddy"
    BERNARD = "bernard"
    MAEVE = "maeve"

    @classmethod
    def parse(cls, value: str | HostParadigm) -> HostParadigm:
        """Accept a host value, a house alias or a stance word; raise ConfigError otherwise."""
        from .errors import ConfigError

        if isinstance(value, HostParadigm):
            return value
        key = str(value).strip().lower()
        for host in cls:
            p = PROFILES[host]
            if key in (host.value, p.house, p.stance.lower()):
                return host
        names = ", ".join(h.value for h in cls)
        raise ConfigError(f"unknown paradigm {value!r}: use one of {names}")


HOSTS: tuple[HostParadigm, ...] = tuple(HostParadigm)
NAMESPACES: tuple[str, ...] = tuple(sorted([h.value for h in HOSTS] + ["shared"]))


def check_namespace(value: str) -> str:
    """A memory namespace (a host value or "shared"); ConfigError otherwise."""
    from .errors import ConfigError

    if value not in NAMESPACES:
        raise ConfigError(f"unknown namespace {value!r}: use one of {', '.join(NAMESPACES)}")
    return value


class Phase(enum.StrEnum):
    DISCOVERY = "discovery"
    EXPLORATION = "exploration"
    SYNTHESIS = "synthesis"
    VALIDATION = "validation"


class Layer(enum.StrEnum):
    WRITE = "write"
    SELECT = "select"
    COMPRESS = "compress"
    ISOLATE = "isolate"


@dataclass(frozen=True)
class SandboxProfile:
    memory_mb: int
    timeout_s: float
    network: bool
    level: str  # basic | secure | maximum


@dataclass(frozen=True)
class HostProfile:
    host: HostParadigm
    label: str
    emoji: str
    stance: str
    house: str
    color: str
    persona: str
    answer_style: str  # what the answer should look like, told to the model
    search_suffixes: tuple[str, ...]
    base_confidence: float
    query_type: str
    source_priorities: tuple[str, ...]
    title_words: tuple[str, ...]
    keep_keywords: tuple[str, ...]
    compress_style: str  # bullets | prose | numbered | bold
    sentence_cap: int  # words per sentence when compressing
    tools: tuple[str, ...]
    fallback_tool: str
    layer_order: tuple[Layer, ...]
    timeout_multiplier: float  # tool timeouts (§4.5)
    research_timeout_factor: float  # adaptive research timeout (§2.8)
    isolate_wait_s: float
    sandbox: SandboxProfile
    select_tools: tuple[str, ...] = field(default=())

    @property
    def display(self) -> str:
        return f"{self.emoji} {self.label} ({self.stance})"


_W, _S, _C, _I = Layer.WRITE, Layer.SELECT, Layer.COMPRESS, Layer.ISOLATE

PROFILES: dict[HostParadigm, HostProfile] = {
    HostParadigm.DOLORES: HostProfile(
        host=HostParadigm.DOLORES,
        label="Dolores",
        emoji="🤠",
        stance="Action",
        house="gryffindor",
        color="#DC2626",
        persona=(
            "You are Dolores: direct, practical and change-oriented. Favour decisive "
            "implementation, breaking loops and the status quo."
        ),
        answer_style=(
            "Give concrete actions to take today, how to break the current pattern, weekly "
            "milestones and the signs of progress. No theory."
        ),
        search_suffixes=(
            "practical implementation steps",
            "breaking patterns transformation",
            "action plan roadmap",
            "escape loops breakthrough",
        ),
        base_confidence=0.85,
        query_type="exploratory",
        source_priorities=("case studies", "success stories", "implementation"),
        title_words=("implement", "action", "change", "transform", "achieve"),
        keep_keywords=("action", "implement", "change", "step", "now"),
        compress_style="bullets",
        sentence_cap=20,
        tools=(
            "search_memory",
            "remember",
            "forget",
            "run_python",
            "sql",
            "advanced_web_search",
            "analyze_statistics",
            "verify_facts",
            "format_citations",
        ),
        fallback_tool="search_memory",
        layer_order=(_W, _S, _C, _I),
        timeout_multiplier=0.8,
        research_timeout_factor=1.2,
        isolate_wait_s=30.0,
        sandbox=SandboxProfile(memory_mb=1024, timeout_s=15, network=True, level="basic"),
        select_tools=("action_planner", "implementation_guide", "change_tracker"),
    ),
    HostParadigm.TEDDY: HostProfile(
        host=HostParadigm.TEDDY,
        label="Teddy",
        emoji="🛡️",
        stance="Protection",
        house="hufflepuff",
        color="#D97706",  # amber; the original had two colours for Teddy (GAP), amber chosen
        persona=(
            "You are Teddy: systematic and loyal to completeness. Consider every stakeholder, "
            "guard against omissions, and name risks and safeguards."
        ),
        answer_style=(
            "Cover every stakeholder, the risks and their safeguards, an inclusive rollout, and "
            "how vulnerable groups are protected."
        ),
        search_suffixes=(
            "comprehensive overview all perspectives",
            "potential risks safeguards",
            "stakeholder impacts considerations",
            "inclusive approaches best practices",
        ),
        base_confidence=0.90,
        query_type="comprehensive",
        source_priorities=("comprehensive", "balanced", "stakeholder", "safety"),
        title_words=("comprehensive", "thorough", "safety", "all", "complete"),
        keep_keywords=("all", "stakeholder", "comprehensive", "consider", "protect"),
        compress_style="prose",
        sentence_cap=30,
        tools=(
            "search_memory",
            "remember",
            "forget",
            "sql",
            "advanced_web_search",
            "search_academic_sources",
            "verify_facts",
            "format_citations",
            "generate_visualizations",
        ),
        fallback_tool="search_memory",
        layer_order=(_W, _S, _I, _C),
        timeout_multiplier=1.2,
        research_timeout_factor=1.0,
        isolate_wait_s=30.0,
        sandbox=SandboxProfile(memory_mb=2048, timeout_s=45, network=True, level="secure"),
        select_tools=("stakeholder_mapper", "risk_assessor", "safeguard_checker"),
    ),
    HostParadigm.BERNARD: HostProfile(
        host=HostParadigm.BERNARD,
        label="Bernard",
        emoji="🧠",
        stance="Analysis",
        house="ravenclaw",
        color="#2563EB",  # blue; the original had blue and green (GAP), blue chosen
        persona=(
            "You are Bernard: analytical and rigorous. Work from theory, patterns and evidence, "
            "give the answer a clear structure, and name the knowledge gaps."
        ),
        answer_style=(
            "Use numbered sections: frameworks, patterns, methods, knowledge gaps and future "
            "directions."
        ),
        search_suffixes=(
            "architectural research peer reviewed",
            "pattern frameworks models",
            "systematic analysis architecture",
        ),
        base_confidence=0.90,
        query_type="analytical",
        source_priorities=("peer-reviewed", "academic", "theoretical", "framework"),
        title_words=("analysis", "framework", "theory", "model", "pattern"),
        keep_keywords=("framework", "pattern", "analysis", "theory", "model"),
        compress_style="numbered",
        sentence_cap=35,
        tools=(
            "search_memory",
            "remember",
            "forget",
            "run_python",
            "sql",
            "search_academic_sources",
            "analyze_statistics",
            "verify_facts",
            "format_citations",
            "local_content_search",
        ),
        fallback_tool="search_memory",
        layer_order=(_S, _W, _C, _I),
        timeout_multiplier=1.5,
        research_timeout_factor=1.5,
        isolate_wait_s=60.0,
        # The brief's table says 240 s, constants.ts says 60 s; the table is the profile.
        sandbox=SandboxProfile(memory_mb=3072, timeout_s=240, network=False, level="maximum"),
        select_tools=("framework_builder", "pattern_analyzer", "theory_mapper"),
    ),
    HostParadigm.MAEVE: HostProfile(
        host=HostParadigm.MAEVE,
        label="Maeve",
        emoji="🕊️",
        stance="Strategy",
        house="slytherin",
        color="#7C3AED",
        persona=(
            "You are Maeve: strategic. Look for leverage, control points, influence mapping and "
            "competitive advantage."
        ),
        answer_style=(
            "Name the control points, the framing, the influence pathways, how to orchestrate "
            "the moves, and the power dynamics."
        ),
        search_suffixes=(
            "strategic approaches control",
            "narrative framing influence",
            "power dynamics leverage",
            "orchestration planning",
        ),
        base_confidence=0.88,
        query_type="analytical",
        source_priorities=("strategic", "competitive", "leverage", "control"),
        title_words=("strategy", "competitive", "leverage", "control", "optimize"),
        keep_keywords=("strategy", "leverage", "control", "optimize", "advantage"),
        compress_style="bold",
        sentence_cap=25,
        tools=(
            "search_memory",
            "remember",
            "forget",
            "run_python",
            "sql",
            "advanced_web_search",
            "analyze_statistics",
            "generate_visualizations",
            "verify_facts",
        ),
        fallback_tool="search_memory",
        # The docs still say isolate first; the code runs select first (the brief follows code).
        layer_order=(_S, _C, _I, _W),
        timeout_multiplier=1.0,
        research_timeout_factor=1.3,
        isolate_wait_s=30.0,
        sandbox=SandboxProfile(memory_mb=2048, timeout_s=30, network=True, level="secure"),
        select_tools=("leverage_finder", "control_mapper", "influence_tracker"),
    ),
}

# Percentage of context reserved for each host, by phase (brief §3).
DENSITY: dict[Phase, dict[HostParadigm, int]] = {
    Phase.DISCOVERY: {
        HostParadigm.DOLORES: 60,
        HostParadigm.TEDDY: 80,
        HostParadigm.BERNARD: 70,
        HostParadigm.MAEVE: 85,
    },
    Phase.EXPLORATION: {
        HostParadigm.DOLORES: 70,
        HostParadigm.TEDDY: 90,
        HostParadigm.BERNARD: 85,
        HostParadigm.MAEVE: 60,
    },
    Phase.SYNTHESIS: {
        HostParadigm.DOLORES: 80,
        HostParadigm.TEDDY: 85,
        HostParadigm.BERNARD: 90,
        HostParadigm.MAEVE: 70,
    },
    Phase.VALIDATION: {
        HostParadigm.DOLORES: 95,
        HostParadigm.TEDDY: 75,
        HostParadigm.BERNARD: 60,
        HostParadigm.MAEVE: 90,
    },
}

LAYER_LABELS: dict[Layer, tuple[str, str]] = {
    Layer.WRITE: ("📝", "Saving to memory"),
    Layer.SELECT: ("🔍", "Choosing sources"),
    Layer.COMPRESS: ("🗜️", "Distilling insights"),
    Layer.ISOLATE: ("🚪", "Focused analysis"),
}


def density(host: HostParadigm, phase: Phase | str | None) -> int:
    """Context density (percent) for the chosen host: the table value × 1.2, capped at 100.

    An unknown phase gives 75 (the original's default)."""
    try:
        value = DENSITY[Phase(phase)][host]  # type: ignore[arg-type]
    except (ValueError, KeyError):
        value = 75
    return min(100, round(value * 1.2))


def profile(host: HostParadigm | str) -> HostProfile:
    return PROFILES[HostParadigm.parse(host)]
