"""A pids cgroup for the weaker tier when it runs as root and cannot switch uid.

RLIMIT_NPROC is never enforced for uid 0, and the weaker tier can only switch the code to a
throw-away uid when that uid can still reach the interpreter (a Python under ``/root`` cannot).
Then a pids cgroup (v1 ``/sys/fs/cgroup/pids`` or v2 with the pids controller) caps the number
of processes instead, and lists every process to kill at the end. Best effort: returns None
where cgroups cannot be written, and the result then says processes are not limited.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from typing import Callable, Iterable

_V1 = "/sys/fs/cgroup/pids"
_V2 = "/sys/fs/cgroup"


def create(max_pids: int) -> str | None:
    for base in (_V1, _V2):
        if base == _V2 and not _v2_has_pids():
            continue
        path = os.path.join(base, f"fourhosts-sandbox-{secrets.token_hex(6)}")
        try:
            os.mkdir(path)
        except OSError:
            continue
        try:
            with open(os.path.join(path, "pids.max"), "w") as fh:
                fh.write(str(max_pids))
            return path
        except OSError:
            remove(path)
    return None


def _v2_has_pids() -> bool:
    try:
        with open(os.path.join(_V2, "cgroup.subtree_control")) as fh:
            return "pids" in fh.read().split()
    except OSError:
        return False


def pids(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def kill_until_gone(find: Callable[[], Iterable[int]], rounds: int) -> None:
    """SIGKILL every pid ``find`` reports, again and again, until it reports none (a process
    may fork between one look and the next) or ``rounds`` run out."""
    for _ in range(rounds):
        found = list(find())
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def kill_all(path: str) -> None:
    kill_until_gone(lambda: pids(path), 100)


def remove(path: str) -> None:
    kill_all(path)
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:  # still has (dying) members
            time.sleep(0.01)
