"""Run Python code in the sandbox and collect the result.

One run: make a private scratch directory, write the code (and any input files) into it, start
``python -I`` through the launcher (bubblewrap tier or rlimits tier, see ``tiers``), read
stdout/stderr with a cap, kill the whole process tree at the wall-clock limit or when the
output passes its cap, then list the files the code produced (never following symlinks) and
delete the scratch directory.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tokenize
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from ..errors import SandboxError
from ..paradigms import HostParadigm
from . import cgroup, mplcache
from .limits import SandboxLimits, limits_for
from .result import SandboxFile, SandboxResult
from .tiers import (
    BUBBLEWRAP,
    LEVEL_TEXT,
    RLIMITS,
    SCRATCH,
    bwrap_prefix,
    interpreter_reachable_by_others,
    probe,
    sandbox_uid,
)

_LAUNCHER_SOURCE = (Path(__file__).with_name("launcher.py")).read_text(encoding="utf-8")
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif", ".svg": "image/svg+xml"}
MAX_IMAGE_BYTES = 8 << 20
MAX_FILES_LISTED = 200
_ORPHAN_GRACE_S = 0.3  # after the main process exits, how long leftover pipe holders may linger


WEAK_TIER_ENV = "FOURHOSTS_SANDBOX_ALLOW_WEAK"  # 1: model code may run where keys are readable


def run_code(
    code: str | bytes,
    *,
    host: HostParadigm | str | None = None,
    limits: SandboxLimits | None = None,
    allow_network: bool | None = None,
    files: Mapping[str, bytes | str] | None = None,
    tier: str | None = None,
    filename: str = "main.py",
    args: Sequence[str] = (),
    keep_scratch: bool = False,
    for_model: bool = False,
    allow_weak: bool | None = None,
    _build_cache: bool = True,
) -> SandboxResult:
    """Run ``code`` as a script in the sandbox and return its result (never raises for errors
    in the code itself; raises SandboxError only when the sandbox cannot start).

    Args:
        code: Python source to run as ``__main__`` (bytes: a file's own bytes, whose coding
            line Python honours).
        host: whose sandbox profile sets the limits (memory, timeout, level, network).
        limits: explicit limits (overrides ``host``).
        allow_network: the analyst's permission for network (the profile must allow it too).
        files: input files to place in the scratch directory, by relative name.
        tier: "bubblewrap" or "rlimits" to force a tier; None → the probed best.
        filename: the script's name inside the scratch directory.
        args: command-line arguments for the script.
        keep_scratch: keep the scratch directory (its path is given in ``notes``).
        for_model: the code was written by the model. Where the tier cannot keep this
            process's secrets from it (the weaker tier under the same uid can read
            ``/proc/<parent>/environ``), it is refused unless ``allow_weak`` (default: the
            ``FOURHOSTS_SANDBOX_ALLOW_WEAK=1`` setting) — the analyst's explicit opt-in.
        allow_weak: the analyst's opt-in for model code on such a tier; None → the setting.
    """
    lim = limits or limits_for(host, allow_network=allow_network)
    pr = probe()
    use = tier or pr.tier
    if use not in (BUBBLEWRAP, RLIMITS):
        raise SandboxError(f"unknown sandbox tier {use!r}: use 'bubblewrap' or 'rlimits'")
    if use == BUBBLEWRAP and pr.tier != BUBBLEWRAP:
        raise SandboxError(
            f"bubblewrap tier requested but unavailable: {pr.reason}. "
            "Install bubblewrap (apt-get install -y bubblewrap) or use the rlimits tier."
        )
    network = lim.network and use == BUBBLEWRAP or use == RLIMITS  # rlimits: never isolated
    own_uid = _own_uid(pr.root, use)
    reach = _reach(use, own_uid)
    if for_model and use == RLIMITS and not own_uid and not _weak_allowed(allow_weak):
        raise SandboxError(
            f"model-requested code was not run: the {LEVEL_TEXT[use]} tier runs it as this user, "
            f"so it could read this process's API keys (/proc/<pid>/environ), the network and "
            f"your files. Install bubblewrap (apt-get install -y bubblewrap), or set "
            f"{WEAK_TIER_ENV}=1 to run model code there anyway"
        )
    started = time.perf_counter()
    text = code if isinstance(code, str) else code.decode("utf-8", "replace")
    scratch = tempfile.mkdtemp(prefix="fourhosts-sandbox-")
    notes: list[str] = []
    if use == RLIMITS and pr.reason:
        notes.append(f"weaker tier: {pr.reason}")
    if reach:
        notes.append("the code could reach: " + "; ".join(reach))
    uid: int | None = None
    group: str | None = None
    try:
        if pr.root:
            if own_uid:
                uid = sandbox_uid()
            else:
                group = cgroup.create(lim.processes)
                notes.append(
                    "processes limited by a pids cgroup (running as root; the interpreter is not "
                    "reachable by an unprivileged uid)" if group else
                    "processes NOT limited: running as root, no uid switch and no pids cgroup"
                )
        _write_inputs(scratch, filename, code, files or {}, uid)
        fonts = mplcache.fontlist() if _build_cache and mplcache.wanted(text) else None
        cmd, cwd, env = _command(use, pr, lim, scratch, filename, uid, group, args, fonts)
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=cwd, env=env, start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox ({cmd[0]}): {exc}") from exc
        out, err, timed_out, flooded = _collect(proc, lim)
        rc = _kill_tree(proc, uid, group)
        duration = time.perf_counter() - started
        status, sig = _classify(rc, err.text, timed_out, flooded, bwrap=use == BUBBLEWRAP)
        produced = _produced_files(scratch, filename)
        if keep_scratch:
            notes.append(f"scratch kept at {scratch}")
        return SandboxResult(
            status=status,
            stdout=out.text,
            stderr=err.text,
            exit_code=None if (timed_out or flooded) else _exit_code(rc),
            duration=duration,
            isolation_level=LEVEL_TEXT[use],
            files=produced,
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            signal=sig,
            network=network,
            limits=lim.to_dict(),
            notes=tuple(notes),
            could_reach=reach,
        )
    finally:
        if group:
            cgroup.remove(group)
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def model_code_refused(tier: str | None = None) -> bool:
    """Whether model-requested code would be refused here: the weaker tier under this user's
    own uid, and no ``FOURHOSTS_SANDBOX_ALLOW_WEAK=1`` opt-in."""
    pr = probe()
    use = tier or pr.tier
    return use == RLIMITS and not _own_uid(pr.root, use) and not _weak_allowed(None)


def _own_uid(root: bool, use: str) -> bool:
    """Whether the code runs as a throw-away uid (root parent only): with bubblewrap's
    namespaces, that keeps this process (and its keys in /proc) out of the code's reach."""
    return root and (use == BUBBLEWRAP or interpreter_reachable_by_others())


def _weak_allowed(allow: bool | None) -> bool:
    if allow is not None:
        return allow
    return os.environ.get(WEAK_TIER_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _reach(use: str, own_uid: bool) -> tuple[str, ...]:
    """What code in this tier can reach beyond its scratch directory (empty for bubblewrap)."""
    if use == BUBBLEWRAP:
        return ()
    if own_uid:
        return ("the network", "files every user may read")
    return ("the network", "every file this user may read or write",
            "this user's processes and their environment, API keys included (/proc/<pid>/environ)")


async def arun_code(code: str, **kwargs) -> SandboxResult:  # noqa: ANN003 - same as run_code
    """Async twin of :func:`run_code` (the run happens on a worker thread)."""
    return await asyncio.to_thread(run_code, code, **kwargs)


def run_file(path: str | os.PathLike[str], **kwargs) -> SandboxResult:  # noqa: ANN003
    """Run a script file in the sandbox (its directory is not visible; only the file is copied)."""
    p = Path(path)
    try:
        code = p.read_bytes()
    except OSError as exc:
        raise SandboxError(f"cannot read {p}: {exc.strerror}; pass a readable .py file") from exc
    try:  # the file's bytes run as they are: Python honours its coding line, as it would here
        encoding, _ = tokenize.detect_encoding(io.BytesIO(code).readline)
        code.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise SandboxError(
            f"cannot read {p} as Python source ({reason}): save it as UTF-8 or declare its "
            "encoding in a coding line"
        ) from None
    kwargs.setdefault("filename", p.name if p.suffix == ".py" else "main.py")
    return run_code(code, **kwargs)


# -- inputs and command ----------------------------------------------------------------


def _safe_name(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise SandboxError(f"input file name {name!r} must be relative and stay inside scratch")
    return str(pure)


def _write_inputs(scratch: str, filename: str, code: str | bytes, files: Mapping[str, bytes | str],
                  uid: int | None) -> None:
    items = {_safe_name(filename): code.encode("utf-8") if isinstance(code, str) else bytes(code)}
    for name, data in files.items():
        items[_safe_name(name)] = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    for name, data in items.items():
        target = Path(scratch, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if uid is not None:  # the throw-away uid owns its scratch directory
        for dirpath, dirnames, filenames in os.walk(scratch):
            os.chown(dirpath, uid, uid)
            for f in filenames:
                os.chown(os.path.join(dirpath, f), uid, uid)


def _settings(lim: SandboxLimits, uid: int | None, weaker: bool, group: str | None) -> str:
    mem = lim.memory_mb << 20
    parts = [
        f"RLIMIT_DATA={mem}",
        # generous: only catches shared-memory bombs that RLIMIT_DATA does not count
        f"RLIMIT_AS={mem + (4 << 30)}",
        f"RLIMIT_CPU={lim.cpu_seconds}:{lim.cpu_seconds + 1}",  # SIGXCPU first, SIGKILL after
        f"RLIMIT_NPROC={lim.processes}",
        f"RLIMIT_NOFILE={lim.open_files}",
        f"RLIMIT_FSIZE={lim.file_size}",
        "RLIMIT_CORE=0",
    ]
    if uid is not None:
        parts.append(f"uid={uid}")
    if group:
        parts.append(f"cgroup={group}")
    if weaker:
        parts.append("pdeathsig=1")
        if uid is None:  # no private uid or namespace: count this user's other processes
            parts.append("nproc_relative=1")
    return ",".join(parts)


def _env(home: str, tmp: str) -> dict[str, str]:
    """A clean environment: nothing of the parent's (no keys, no tokens) is passed on."""
    bindir = os.path.dirname(sys.executable)
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{tmp}/matplotlib",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }


def _command(use: str, pr, lim: SandboxLimits, scratch: str, filename: str,  # noqa: ANN001
             uid: int | None, group: str | None, args: Sequence[str], fonts: Path | None,
             ) -> tuple[list[str], str, dict[str, str]]:
    py = sys.executable
    if use == BUBBLEWRAP:
        assert pr.bwrap is not None
        script = f"{SCRATCH}/{filename}"
        cmd = bwrap_prefix(pr.bwrap, scratch, lim, root=pr.root)
        if fonts is not None:
            cmd += ["--perms", "1777", "--dir", "/tmp/matplotlib",
                    "--ro-bind", str(fonts), f"/tmp/matplotlib/{fonts.name}"]
        env = _env(SCRATCH, "/tmp")
        cwd = "/"
    else:
        script = os.path.join(scratch, filename)
        cmd = []
        tmp = os.path.join(scratch, ".tmp")
        os.makedirs(os.path.join(tmp, "matplotlib"), exist_ok=True)
        if fonts is not None:
            shutil.copyfile(fonts, os.path.join(tmp, "matplotlib", fonts.name))
        if uid is not None:
            for dirpath, _, names in os.walk(tmp):
                os.chown(dirpath, uid, uid)
                for n in names:
                    os.chown(os.path.join(dirpath, n), uid, uid)
        env = _env(scratch, tmp)
        cwd = scratch
    settings = _settings(lim, uid, use == RLIMITS, group)
    cmd += [py, "-I", "-c", _LAUNCHER_SOURCE, settings, script, *args]
    return cmd, cwd, env


# -- output, killing, classification -----------------------------------------------------


class _Capture:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.buf)

    @property
    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")


def _collect(proc: subprocess.Popen, lim: SandboxLimits) -> tuple[_Capture, _Capture, bool, bool]:
    """Read both pipes until EOF, the wall-clock limit or the output cap, in this thread."""
    out, err = _Capture(lim.output_bytes), _Capture(lim.output_bytes)
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    for pipe, cap in ((proc.stdout, out), (proc.stderr, err)):
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ, cap)
    deadline = time.monotonic() + lim.timeout_s
    exited_at: float | None = None
    timed_out = flooded = False
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _ORPHAN_GRACE_S:
                break  # something left behind still holds the pipes; it is killed next
            for key, _ in sel.select(timeout=min(deadline - now, 0.25)):
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                key.data.add(chunk)
            if out.total + err.total > lim.output_kill_bytes:
                flooded = True
                break
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return out, err, timed_out, flooded


def _kill_tree(proc: subprocess.Popen, uid: int | None, group: str | None) -> int:
    """Kill everything the run started and return the main process's exit status: its process
    group (bubblewrap's pid namespace dies with it), every process of the throw-away uid or of
    the pids cgroup (which also catches daemons that left the group with setsid())."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    rc = proc.wait()  # reap first: a zombie still shows under its uid
    if group:
        cgroup.kill_all(group)
    if uid is not None:
        cgroup.kill_until_gone(lambda: _pids_of(uid), 50)
    return rc


def _pids_of(uid: int) -> list[int]:
    """Live (non-zombie) processes of ``uid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    state = fh.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                pids.append(int(entry))
    return pids


def _exit_code(rc: int) -> int:
    return rc if rc >= 0 else 128 - rc


def _signal_of(rc: int, bwrap: bool) -> int | None:
    if rc < 0:
        return -rc
    if bwrap and rc > 128:  # bubblewrap reports a signalled child as 128 + signal
        return rc - 128
    return None


def _classify(rc: int, stderr: str, timed_out: bool, flooded: bool, *, bwrap: bool) -> tuple[str, str | None]:
    if flooded:
        return "output_limit", None
    if timed_out:
        return "timeout", "SIGKILL"
    sig = _signal_of(rc, bwrap)
    name = signal.Signals(sig).name if sig and sig in signal.Signals._value2member_map_ else None
    tail = stderr[-2000:]
    if sig == signal.SIGXCPU:
        return "cpu_limit", name
    if sig == signal.SIGXFSZ or "[Errno 27] File too large" in tail:
        return "file_size_limit", name
    if rc != 0 and ("MemoryError" in tail or "Cannot allocate memory" in tail):
        return "memory_limit", name
    if sig is not None:
        return "killed", name
    return ("ok" if rc == 0 else "error"), None


# -- files produced ----------------------------------------------------------------------


def _produced_files(scratch: str, script: str) -> tuple[SandboxFile, ...]:
    """Files left in scratch, never following a symlink (the parent may be root: following a
    link the code planted would read the host's files on its behalf)."""
    found: list[SandboxFile] = []
    root = Path(scratch)
    for dirpath, dirnames, filenames in os.walk(scratch, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        for fname in sorted(filenames) + [d for d in os.listdir(dirpath) if _is_link(dirpath, d)
                                          and d not in filenames]:
            rel = str(rel_dir / fname) if str(rel_dir) != "." else fname
            if rel == script or fname.startswith("."):
                continue
            if len(found) >= MAX_FILES_LISTED:
                return tuple(found)
            found.append(_describe(os.path.join(dirpath, fname), rel))
    return tuple(found)


def _is_link(dirpath: str, name: str) -> bool:
    return os.path.islink(os.path.join(dirpath, name))


def _describe(path: str, rel: str) -> SandboxFile:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return SandboxFile(rel, 0, "inode/symlink", note="symlink: not followed")
    if not stat.S_ISREG(st.st_mode):
        return SandboxFile(rel, 0, "inode/special", note="not a regular file: ignored")
    mime = _IMAGE_TYPES.get(Path(rel).suffix.lower()) or (
        mimetypes.guess_type(rel)[0] or "application/octet-stream"
    )
    data = None
    note = ""
    if mime.startswith("image/"):
        if st.st_nlink != 1:
            note = "hard link: not read"
        elif st.st_size > MAX_IMAGE_BYTES:
            note = f"image over {MAX_IMAGE_BYTES >> 20} MiB: not read"
        else:
            data = _read_nofollow(path, MAX_IMAGE_BYTES)
    return SandboxFile(rel, st.st_size, mime, data, note)


def _read_nofollow(path: str, cap: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None
        chunks = []
        left = cap
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
