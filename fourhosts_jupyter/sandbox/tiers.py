"""Which isolation the machine allows, probed once, and the bubblewrap command line.

Two tiers:

- ``bubblewrap``: new mount, pid, network, ipc and uts namespaces; the system directories and the
  Python environment bound read-only; a private writable ``/scratch`` and size-capped ``/tmp``;
  nothing else of the host's filesystem (no home, no store, no project) is visible; killed with
  its parent; plus the rlimits of the weaker tier.
- ``rlimits``: a plain subprocess with the same rlimits, a clean environment and a scratch
  working directory. The network and the filesystem are NOT isolated; every result says so.

When the parent runs as root the sandboxed code runs as a throw-away uid (RLIMIT_NPROC is never
enforced for uid 0, and the uid also loses read access to root-only files). bubblewrap then
runs without a user namespace (a user namespace would map the code back to uid 0) and keeps
only CAP_SETUID/CAP_SETGID for the launcher, which drops them with the uid switch.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import SandboxError
from .limits import SandboxLimits

BUBBLEWRAP = "bubblewrap"
RLIMITS = "rlimits"
LEVEL_TEXT = {
    BUBBLEWRAP: "bubblewrap",
    RLIMITS: "rlimits-only (weaker: network and filesystem not isolated)",
}
TIER_ENV = "FOURHOSTS_SANDBOX_TIER"  # auto | bubblewrap | rlimits
SCRATCH = "/scratch"  # where the scratch directory appears inside bubblewrap
_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")


@dataclass(frozen=True)
class Probe:
    tier: str  # bubblewrap | rlimits
    reason: str  # why the weaker tier was chosen; "" on bubblewrap
    bwrap: str | None  # path of the bwrap binary, when found
    root: bool  # the parent runs as uid 0 (code then runs as a throw-away uid)

    @property
    def isolation_level(self) -> str:
        return LEVEL_TEXT[self.tier]


_probe: Probe | None = None
_probe_lock = threading.Lock()


def probe(*, refresh: bool = False) -> Probe:
    """Find out once per process whether bubblewrap works here (it fails, e.g., in containers
    that forbid namespaces) and pick the tier. ``FOURHOSTS_SANDBOX_TIER`` forces one."""
    global _probe
    forced = os.environ.get(TIER_ENV, "auto").strip().lower() or "auto"
    if forced not in ("auto", BUBBLEWRAP, RLIMITS):
        raise SandboxError(f"{TIER_ENV}={forced!r} is not a tier: use auto, bubblewrap or rlimits")
    root = os.geteuid() == 0
    if forced == RLIMITS:
        return Probe(RLIMITS, f"forced by {TIER_ENV}=rlimits", shutil.which("bwrap"), root)
    with _probe_lock:
        if _probe is None or refresh:
            _probe = _probe_bwrap(root)
    if forced == BUBBLEWRAP and _probe.tier != BUBBLEWRAP:
        raise SandboxError(
            f"{TIER_ENV}=bubblewrap but bubblewrap cannot run here: {_probe.reason}. "
            "Install it (apt-get install -y bubblewrap) or allow user namespaces, "
            f"or unset {TIER_ENV} to accept the weaker tier."
        )
    return _probe


def _probe_bwrap(root: bool) -> Probe:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Probe(RLIMITS, "bwrap not found (apt-get install -y bubblewrap)", None, root)
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="fourhosts-probe-") as tmp:
        cmd = bwrap_prefix(bwrap, tmp, SandboxLimits(), root=root) + [true]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=10, env={}, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Probe(RLIMITS, f"bwrap failed to start: {exc}", bwrap, root)
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return Probe(RLIMITS, f"bwrap failed: {err[-1] if err else done.returncode}", bwrap, root)
    return Probe(BUBBLEWRAP, "", bwrap, root)


def python_dirs() -> list[str]:
    """Directories the interpreter needs: the venv (found via sys.prefix, wherever it is) and
    the base installation it points to, minus those already under a bound system directory."""
    dirs: set[str] = set()
    for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix):
        dirs.add(os.path.realpath(p))
        dirs.add(os.path.abspath(p))  # the venv path as written, e.g. via a symlinked home
    real_exe = os.path.realpath(sys.executable)
    dirs.add(os.path.dirname(os.path.dirname(real_exe)))
    out: list[str] = []
    for d in sorted(dirs, key=len):
        if any(d == f"/{s}" or d.startswith(f"/{s}/") for s in _SYSTEM_DIRS):
            continue
        if d == "/" or any(d == o or d.startswith(o + "/") for o in out):
            continue
        out.append(d)
    return out


def interpreter_reachable_by_others() -> bool:
    """Whether an unprivileged uid can run this interpreter outside bubblewrap (every directory
    on the way to it is world-searchable): the weaker tier switches uid only then."""
    for d in python_dirs() + [os.path.dirname(os.path.realpath(sys.executable))]:
        for a in [*_ancestors(d + "/x")]:
            try:
                if not os.stat(a).st_mode & 0o001:
                    return False
            except OSError:
                return False
    return True


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def bwrap_prefix(bwrap: str, scratch: str, limits: SandboxLimits, *, root: bool) -> list[str]:
    """The bwrap arguments up to (not including) the command to run."""
    cmd = [bwrap]
    if root:
        # No user namespace: it would map the code back to uid 0 (see module docstring).
        cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        if not limits.network:
            cmd += ["--unshare-net"]
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-all", "--unshare-user", "--disable-userns"]
        if limits.network:
            cmd += ["--share-net"]
    cmd += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    for name in _SYSTEM_DIRS:
        path = f"/{name}"
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    cmd += ["--dev", "/dev", "--proc", "/proc"]
    cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    cmd += ["--perms", "1777", "--size", str(min(limits.tmp_bytes, 64 << 20)), "--tmpfs", "/dev/shm"]
    made: set[str] = {"/tmp", "/usr", "/etc"}
    for d in python_dirs():
        for a in _ancestors(d + "/x"):
            if a not in made:
                made.add(a)
                cmd += ["--perms", "0755", "--dir", a]
        cmd += ["--ro-bind", d, d]
    cmd += ["--bind", scratch, SCRATCH, "--chdir", SCRATCH]
    return cmd


def sandbox_uid() -> int:
    """A throw-away uid for one run (root parent only): its own RLIMIT_NPROC count, no access to
    root-only files, and every process it leaves behind can be found and killed."""
    return 3_000_000 + secrets.randbelow(1_000_000)
