"""Resource limits for one sandboxed run, derived from a host's sandbox profile (brief §3.4).

    host   memory  timeout  network  level
    dolores 1 GB    15 s     yes      basic
    teddy   2 GB    45 s     yes      secure
    bernard 3 GB    240 s    no       maximum
    maeve   2 GB    30 s     yes      secure

The profile's "network: yes" is only a permission: network stays off unless the analyst also
allows it (``allow_network=True`` or ``FOURHOSTS_SANDBOX_NETWORK=1``), and the ``maximum``
level never gets it. The level also sets how many processes, open files and bytes per file the
code may use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..paradigms import HostParadigm, profile

# level → (processes, open files, max bytes of one file written)
_LEVELS: dict[str, tuple[int, int, int]] = {
    "basic": (128, 512, 256 << 20),
    "secure": (64, 256, 128 << 20),
    "maximum": (32, 128, 64 << 20),
}

NETWORK_ENV = "FOURHOSTS_SANDBOX_NETWORK"


@dataclass(frozen=True)
class SandboxLimits:
    """Everything the sandbox enforces for one run. Sizes in bytes, times in seconds."""

    memory_mb: int = 1024  # RLIMIT_DATA (heap + anonymous maps); see sandbox.launcher
    timeout_s: float = 30.0  # wall clock; the whole process tree is killed after it
    cpu_s: int | None = None  # RLIMIT_CPU; None → the wall timeout rounded up
    processes: int = 64  # RLIMIT_NPROC (threads count too)
    open_files: int = 256  # RLIMIT_NOFILE
    file_size: int = 128 << 20  # RLIMIT_FSIZE: largest file the code may write
    output_bytes: int = 1 << 20  # stdout / stderr kept, each
    output_kill_bytes: int = 16 << 20  # the run is killed once this much output was produced
    tmp_bytes: int = 256 << 20  # size of the private /tmp (bubblewrap tier)
    network: bool = False
    level: str = "secure"

    def __post_init__(self) -> None:
        if self.level not in _LEVELS:
            raise ConfigError(f"unknown sandbox level {self.level!r}: use one of {', '.join(_LEVELS)}")
        if self.memory_mb < 64 or self.timeout_s <= 0 or self.processes < 1:
            raise ConfigError(
                "sandbox limits too small: memory_mb must be ≥ 64, timeout_s > 0, processes ≥ 1"
            )

    @property
    def cpu_seconds(self) -> int:
        return self.cpu_s if self.cpu_s is not None else max(1, int(self.timeout_s + 0.999))

    def with_(self, **changes: object) -> SandboxLimits:
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return {
            "memory_mb": self.memory_mb,
            "timeout_s": self.timeout_s,
            "cpu_s": self.cpu_seconds,
            "processes": self.processes,
            "open_files": self.open_files,
            "file_size": self.file_size,
            "network": self.network,
            "level": self.level,
        }


def network_allowed_by_user() -> bool:
    return os.environ.get(NETWORK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def limits_for(host: HostParadigm | str | None = None, *, allow_network: bool | None = None) -> SandboxLimits:
    """The limits for a host's profile (default: the ``secure`` level, 1 GB, 30 s, no network).

    ``allow_network`` is the analyst's permission; None reads ``FOURHOSTS_SANDBOX_NETWORK``.
    """
    if host is None:
        return SandboxLimits()
    sp = profile(host).sandbox
    procs, files, fsize = _LEVELS[sp.level]
    user_ok = network_allowed_by_user() if allow_network is None else allow_network
    return SandboxLimits(
        memory_mb=sp.memory_mb,
        timeout_s=float(sp.timeout_s),
        processes=procs,
        open_files=files,
        file_size=fsize,
        network=bool(sp.network and user_ok and sp.level != "maximum"),
        level=sp.level,
    )
