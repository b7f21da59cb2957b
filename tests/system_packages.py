"""Tests that need a system package skip with one clear reason when it is missing.

``.ci/run`` installs every such package and sets ``FOURHOSTS_REQUIRE_SYSTEM=1``: there a missing
package fails the test instead, so CI still proves what the skip would hide.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

STRICT = os.environ.get("FOURHOSTS_REQUIRE_SYSTEM", "") not in ("", "0")


def unavailable(reason: str, *, module: bool = False) -> NoReturn:
    """Skip because ``reason`` (what is missing and how to get it); under CI
    (``FOURHOSTS_REQUIRE_SYSTEM=1``) fail instead, so nothing is skipped there."""
    if STRICT:
        pytest.fail(f"{reason}; FOURHOSTS_REQUIRE_SYSTEM=1 turns this skip into a failure")
    pytest.skip(reason, allow_module_level=module)


def require(program: str, package: str | None = None) -> str:
    """Return the path of ``program``, or skip (fail under CI) naming the Debian package."""
    found = shutil.which(program)
    if found:
        return found
    unavailable(f"{program} is not installed (apt-get install {package or program})")


def require_bubblewrap() -> None:
    """Skip (fail under CI) unless the bubblewrap sandbox tier can run here: ``bwrap`` installed
    and allowed to create namespaces (unprivileged containers forbid it)."""
    require("bwrap", "bubblewrap")
    from fourhosts_jupyter.sandbox import BUBBLEWRAP, probe

    found = probe()
    if found.tier != BUBBLEWRAP:
        unavailable(f"bubblewrap cannot run here: {found.reason}")
