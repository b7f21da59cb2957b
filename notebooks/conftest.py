"""nbval's kernels inherit this process's environment: give them the suite's (offline, final
render, no keys) also when the notebooks are run alone (``pytest notebooks/``), where
``tests/conftest.py`` is not loaded."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from record_notebooks import use_test_environment  # noqa: E402

use_test_environment(fresh_home=False)


# Tutorials whose cells run code in the bubblewrap sandbox (the weaker tier prints other
# results, and refuses model-requested code): skipped, naming the package, where it is missing.
NEEDS_BUBBLEWRAP = {"05-analysis.ipynb"}


def pytest_runtest_setup(item):  # noqa: ANN001, ANN201
    if Path(str(item.fspath)).name in NEEDS_BUBBLEWRAP:
        from system_packages import require_bubblewrap

        require_bubblewrap()
