"""Budgets in tokens and USD, nested: a run's budget inside a batch's inside the session's.

    session = Budget(usd=2.0, scope="session")
    run = Budget(tokens=20_000, parent=session, scope="run")
    hold = run.reserve(tokens=1_500, usd=0.004)   # raises BudgetExceeded if any level would pass
    ...                                           # make the call
    run.settle(hold, tokens=1_320, usd=0.0035)    # what it really used, on every level

A reservation counts against every level until it is settled, so calls running at once cannot
all squeeze under the same remaining budget. ``None`` as a limit means "no limit". USD is only
counted where a price is known; a USD limit with an unknown price is refused by the caller
(see guard.py), never treated as $0.

Thread-safe (one lock for all budgets): a session budget is shared by runs on worker threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..errors import BudgetExceeded, ConfigError

_LOCK = threading.RLock()


@dataclass(frozen=True)
class BudgetUsage:
    """Used / available / utilization of one budget, per unit (``None``: no limit set)."""

    scope: str
    used_tokens: int
    used_usd: float
    limit_tokens: int | None
    limit_usd: float | None
    reserved_tokens: int = 0
    reserved_usd: float = 0.0

    @property
    def available_tokens(self) -> int | None:
        if self.limit_tokens is None:
            return None
        return max(0, self.limit_tokens - self.used_tokens - self.reserved_tokens)

    @property
    def available_usd(self) -> float | None:
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - self.used_usd - self.reserved_usd)

    @property
    def utilization(self) -> float | None:
        """The larger share used of the limits set (1.0 = all used); None without limits."""
        shares = []
        if self.limit_tokens:
            shares.append(self.used_tokens / self.limit_tokens)
        elif self.limit_tokens == 0:
            shares.append(1.0)
        if self.limit_usd:
            shares.append(self.used_usd / self.limit_usd)
        elif self.limit_usd == 0:
            shares.append(1.0)
        return max(shares) if shares else None

    def to_dict(self) -> dict[str, object]:
        return {
            "scope": self.scope, "used_tokens": self.used_tokens, "used_usd": round(self.used_usd, 6),
            "limit_tokens": self.limit_tokens, "limit_usd": self.limit_usd,
            "available_tokens": self.available_tokens, "available_usd": self.available_usd,
            "utilization": self.utilization,
        }

    def __str__(self) -> str:
        parts = []
        if self.limit_tokens is not None:
            parts.append(f"{self.used_tokens:,}/{self.limit_tokens:,} tokens")
        if self.limit_usd is not None:
            parts.append(f"${self.used_usd:.4f}/${self.limit_usd:.4f}")
        if not parts:
            parts.append(f"{self.used_tokens:,} tokens, ${self.used_usd:.4f} (no limit)")
        return f"{self.scope} budget: " + ", ".join(parts)


@dataclass(frozen=True)
class Reservation:
    tokens: int
    usd: float
    chain: tuple[Budget, ...]


class Budget:
    """A token and/or USD limit with a parent; see the module docstring."""

    def __init__(self, tokens: int | None = None, usd: float | None = None, *,
                 parent: Budget | None = None, scope: str = "run") -> None:
        if tokens is not None and (isinstance(tokens, bool) or int(tokens) != tokens or tokens < 0):
            raise ConfigError(f"the {scope} token budget must be a whole number ≥ 0, not {tokens!r}")
        if usd is not None and (isinstance(usd, bool) or not float(usd) >= 0):
            raise ConfigError(f"the {scope} USD budget must be a number ≥ 0, not {usd!r}")
        self.limit_tokens = int(tokens) if tokens is not None else None
        self.limit_usd = float(usd) if usd is not None else None
        self.parent = parent
        self.scope = scope
        self.used_tokens = 0
        self.used_usd = 0.0
        self.reserved_tokens = 0
        self.reserved_usd = 0.0

    def __repr__(self) -> str:
        return f"Budget({self.usage()})"

    @property
    def chain(self) -> tuple[Budget, ...]:
        out: list[Budget] = []
        b: Budget | None = self
        while b is not None:
            out.append(b)
            b = b.parent
        return tuple(out)

    @property
    def limited(self) -> bool:
        """Whether this budget or a parent sets any limit."""
        return any(b.limit_tokens is not None or b.limit_usd is not None for b in self.chain)

    @property
    def needs_price(self) -> bool:
        return any(b.limit_usd is not None for b in self.chain)

    # -- checks -----------------------------------------------------------------------------

    def shortfall(self, tokens: int, usd: float | None = 0.0, *, extra_tokens: int = 0,
                  extra_usd: float = 0.0, ignore_reserved: bool = False) -> BudgetExceeded | None:
        """The error to raise if ``tokens`` / ``usd`` more would pass a level, else None.
        ``extra_*``: more already promised elsewhere (the scheduler's running estimates)."""
        with _LOCK:
            for b in self.chain:
                held_t = 0 if ignore_reserved else b.reserved_tokens
                held_u = 0.0 if ignore_reserved else b.reserved_usd
                if b.limit_tokens is not None:
                    left = b.limit_tokens - b.used_tokens - held_t - extra_tokens
                    if tokens > left:
                        return BudgetExceeded(
                            f"the {b.scope} budget of {b.limit_tokens:,} tokens has {max(0, left):,} "
                            f"left, and this needs about {tokens:,}: refused before it ran. "
                            f"Raise the budget (--budget-tokens) or resume later",
                            scope=b.scope, unit="tokens", needed=tokens, left=max(0, left))
                if b.limit_usd is not None and usd is not None:
                    left_u = b.limit_usd - b.used_usd - held_u - extra_usd
                    if usd > left_u + 1e-12:
                        return BudgetExceeded(
                            f"the {b.scope} budget of ${b.limit_usd:.4f} has ${max(0.0, left_u):.4f} "
                            f"left, and this needs about ${usd:.4f}: refused before it ran. "
                            f"Raise the budget (--budget-usd) or resume later",
                            scope=b.scope, unit="usd", needed=usd, left=max(0.0, left_u))
        return None

    def reserve(self, tokens: int, usd: float | None = 0.0) -> Reservation:
        """Hold ``tokens`` / ``usd`` on every level, or raise BudgetExceeded (nothing held)."""
        with _LOCK:
            err = self.shortfall(tokens, usd)
            if err is not None:
                raise err
            chain = self.chain
            for b in chain:
                b.reserved_tokens += tokens
                b.reserved_usd += usd or 0.0
            return Reservation(tokens, usd or 0.0, chain)

    def settle(self, hold: Reservation | None, tokens: int = 0, usd: float | None = 0.0) -> None:
        """Release ``hold`` and record what was really used (on every level of the chain)."""
        with _LOCK:
            if hold is not None:
                for b in hold.chain:
                    b.reserved_tokens -= hold.tokens
                    b.reserved_usd -= hold.usd
            for b in (hold.chain if hold is not None else self.chain):
                b.used_tokens += int(tokens)
                b.used_usd += usd or 0.0

    def record(self, tokens: int, usd: float | None = 0.0) -> None:
        self.settle(None, tokens, usd)

    def usage(self) -> BudgetUsage:
        with _LOCK:
            return BudgetUsage(self.scope, self.used_tokens, self.used_usd, self.limit_tokens,
                               self.limit_usd, self.reserved_tokens, self.reserved_usd)


def run_budget(tokens: int | None = None, usd: float | None = None,
               parent: Budget | None = None) -> Budget | None:
    """The budget of one run: its own limits under ``parent``; None when no level limits."""
    if tokens is None and usd is None:
        return parent
    return Budget(tokens, usd, parent=parent, scope="run")
