"""What the cell shows of the evaluation stage: confidence with its parts, the Healing stage
(trigger, confidence before → after) and a card per collaboration (from → to, reason, status).

A thing that renders itself (both forms), folded from the events; live and replayed runs
(whose events come back as dicts) look the same. Every text from the run goes through
``esc`` / ``plain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..render import esc, plain

_STATUS_COLOUR = {"done": "#16A34A", "declined": "#6B7280", "failed": "#DC2626"}


def _label(host: str) -> str:
    from ..paradigms import PROFILES, HostParadigm

    try:
        p = PROFILES[HostParadigm(host)]
    except ValueError:
        return str(host)
    return f"{p.emoji} {p.label}"


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return value.to_dict() if hasattr(value, "to_dict") else {}


def _confidence_line(d: dict[str, Any]) -> str:
    return d.get("summary") or f"confidence {float(d.get('confidence') or 0):.2f}"


@dataclass
class QualityPanel:
    evaluations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (label, evaluation)
    healing: list[dict[str, Any]] = field(default_factory=list)
    collaborations: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.evaluations or self.healing or self.collaborations)

    def apply(self, e: Any) -> None:
        kind = getattr(e, "type", "")
        if kind == "evaluated":
            self.evaluations.append((e.label, _as_dict(e.evaluation)))
        elif kind == "healed":
            self.healing.append({k: getattr(e, k) for k in ("trigger", "before", "after", "kept", "added_sources", "detail")})
        elif kind == "collaboration":
            self.collaborations.append({k: getattr(e, k) for k in (
                "asking", "helping", "reason", "priority", "status", "confidence", "threshold", "recommendations", "detail")})

    def final(self) -> dict[str, Any] | None:
        """The evaluation that stands: the healed one when healing was kept, else the first."""
        if not self.evaluations:
            return None
        if self.healing and self.healing[-1]["kept"]:
            return self.evaluations[-1][1]
        return self.evaluations[0][1]

    # -- the two forms -----------------------------------------------------------------------

    def to_text(self) -> str:
        lines = []
        ev = self.final()
        if ev is not None:
            line = plain(_confidence_line(ev))  # "confidence 0.76 (8 of 8 claims supported, …)"
            lines.append(line[:1].upper() + line[1:])
        for h in self.healing:
            outcome = "healed answer kept" if h["kept"] else "first answer kept"
            lines.append(f"Healing ({plain(h['trigger'])}): confidence {h['before']:.2f} → {h['after']:.2f}, {outcome}"
                         f" ({plain(h['detail'])})")
        for c in self.collaborations:
            lines.append(f"Collaboration: {_label(c['asking'])} → {_label(c['helping'])} · {plain(c['reason'])}"
                         f" · {plain(c['priority'])} priority · {plain(c['status'])}"
                         + (f" ({plain(c['detail'])})" if c.get("detail") else ""))
        return "\n".join(lines)

    def to_html(self) -> str:
        parts = ['<div class="fh-quality" style="margin:6px 0;font-size:0.9em">']
        ev = self.final()
        if ev is not None:
            conf = float(ev.get("confidence") or 0)
            colour = "#16A34A" if conf >= 0.6 else "#B45309" if conf >= 0.35 else "#DC2626"
            parts.append(
                f'<div class="fh-confidence"><span style="background:{colour};color:#fff;border-radius:8px;'
                f'padding:0 7px">confidence {conf:.2f}</span> {esc(ev.get("parts", ""))}</div>'
            )
        for h in self.healing:
            outcome = "healed answer kept" if h["kept"] else "first answer kept"
            parts.append(
                '<div class="fh-healing" style="border-left:3px solid #2563EB;padding-left:6px;margin:4px 0">'
                f'🩹 <b>Healing</b> — trigger: {esc(h["trigger"])} · confidence {h["before"]:.2f} → '
                f'{h["after"]:.2f} · {esc(outcome)}<div style="opacity:0.75">{esc(h["detail"])}</div></div>'
            )
        for c in self.collaborations:
            colour = _STATUS_COLOUR.get(c["status"], "#6B7280")
            parts.append(
                '<div class="fh-collab" style="border:1px solid #D1D5DB;border-radius:4px;padding:3px 8px;margin:4px 0">'
                f'🤝 <b>{esc(_label(c["asking"]))} → {esc(_label(c["helping"]))}</b> · {esc(c["reason"])} · '
                f'{esc(c["priority"])} priority <span style="background:{colour};color:#fff;border-radius:8px;'
                f'padding:0 7px">{esc(c["status"])}</span>'
                + (f'<div style="opacity:0.75">{esc(c["detail"])}</div>' if c.get("detail") else "")
                + "</div>"
            )
        parts.append("</div>")
        return "".join(parts)


def stored_lines(record: dict[str, Any]) -> list[str]:
    """``fourhosts show``: a run's stored evaluation record (m007) as text lines."""
    panel = QualityPanel()
    first = record.get("evaluation") or {}
    panel.evaluations.append(("answer", first))
    for h in record.get("healing") or ():
        panel.healing.append({"detail": _web_words(h.get("web")), **h})
        panel.evaluations.append(("healed", h.get("healed_evaluation") or {}))
    panel.collaborations.extend({"detail": "", "recommendations": 0, **c} for c in record.get("collaboration") or ())
    return panel.to_text().splitlines()


def _web_words(web: dict[str, Any] | None) -> str:
    """What a healing round took from the web (quality/web_heal.py), for ``fourhosts show``."""
    if not web:
        return ""
    from .web_heal import WebStep

    return WebStep(**web).words()
