"""What runs first inside the sandbox: set the limits, drop privileges, then run the script.

This file is not imported by the parent: its source is passed to ``python -I -c`` so that the
sandbox needs no access to this package. It must stay stdlib-only and cheap (it is on the
start-up path of every run).

    python -I -c <this source> "<settings>" /scratch/main.py [args…]

``settings`` is ``key=value`` pairs joined by ``,``: ``RLIMIT_*`` names with ``soft:hard`` (or one
value for both),
``uid`` (switch to this uid/gid — only when started as root, so RLIMIT_NPROC applies: the
kernel never enforces it for uid 0), ``nproc_relative`` (add the processes this uid already
runs, for the weaker tier without a private namespace), ``cgroup`` (a pids cgroup directory to
join first: the weaker tier as root when no uid switch is possible) and ``pdeathsig`` (die with the parent,
for the weaker tier; bubblewrap's ``--die-with-parent`` covers the other).

RLIMIT_DATA is the memory limit rather than RLIMIT_AS: NumPy/OpenBLAS reserve large address
space at import and fail under a small RLIMIT_AS (facts.md); RLIMIT_AS is set generously to
catch shared-memory bombs that RLIMIT_DATA does not count.
"""

import os
import resource
import sys


def _apply(settings):
    cfg = dict(item.split("=", 1) for item in settings.split(",") if item)
    cgroup = cfg.pop("cgroup", "")
    if cgroup:  # join it before any user code can fork (race-free, unlike the parent doing it)
        with open(cgroup + "/cgroup.procs", "w") as fh:
            fh.write(str(os.getpid()))
    uid = int(cfg.pop("uid", "-1"))
    relative = cfg.pop("nproc_relative", "0") == "1"
    pdeathsig = cfg.pop("pdeathsig", "0") == "1"
    for name, value in cfg.items():
        soft, _, hard = value.partition(":")  # "soft:hard", or one value for both
        soft, hard = int(soft), int(hard or soft)
        if name == "RLIMIT_NPROC" and relative:
            extra = _own_processes(uid if uid >= 0 else os.getuid())
            soft, hard = soft + extra, hard + extra
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if uid >= 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if pdeathsig:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent is already gone
            os._exit(137)


def _own_processes(uid):
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat("/proc/" + entry).st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _run(path):
    import types

    sys.argv = sys.argv[2:]
    sys.path[0] = os.path.dirname(path)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    with open(path, "rb") as fh:  # bytes: compile() honours the file's coding line
        code = compile(fh.read(), path, "exec")
    try:
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:  # print the user's traceback without this launcher's frame
        import traceback

        try:
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        except BaseException:  # e.g. MemoryError again while formatting
            sys.stderr.write(type(exc).__name__ + "\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    _apply(sys.argv[1])
    _run(sys.argv[2])
