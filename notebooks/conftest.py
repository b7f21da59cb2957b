"""nbval's kernels inherit this process's environment: give them the suite's (offline, final
render, no keys) also when the notebooks are run alone (``pytest notebooks/``), where
``tests/conftest.py`` is not loaded."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from record_notebooks import use_test_environment  # noqa: E402

use_test_environment(fresh_home=False)
