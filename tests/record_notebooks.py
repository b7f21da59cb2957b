"""Re-record the tutorial notebooks' outputs, the reference nbval compares checked cells with.

    python tests/record_notebooks.py                  # every notebook in notebooks/
    python tests/record_notebooks.py 01-quickstart    # some of them (name or path)

Run it after a change that alters what a tutorial shows (an answer, a source label, a ranking),
then review ``git diff notebooks/`` before committing: every ``# NBVAL_CHECK_OUTPUT`` cell's
new output becomes the expected one. Kernels get the environment the test suite gives nbval's
kernels (``tests/conftest.py``: offline, final-render mode, no keys), so what is recorded is
what ``python -m pytest`` will see.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TEST_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "FOURHOSTS_DOTENV": "0",
            "FOURHOSTS_LIVE": "0",
            # the evaluation stage (quality/) off, as in tests/conftest.py; 08a turns it on
            "FOURHOSTS_EVALUATION": "0",
            # float32 on every CPU: bf16 (chosen automatically where the CPU has it) moves the
            # scores and percentages the checked cells print (tests force each path themselves)
            "FOURHOSTS_EMBED_BF16": "0"}
SECRETS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT")


def use_test_environment(*, fresh_home: bool = True) -> None:
    """This process's environment as conftest sets it, inherited by the kernels started here."""
    os.environ.update(TEST_ENV)
    if fresh_home or not os.environ.get("FOURHOSTS_HOME"):
        os.environ["FOURHOSTS_HOME"] = tempfile.mkdtemp(prefix="fourhosts-record-home-")
    for key in SECRETS:
        os.environ.pop(key, None)
    # the kernel imports this checkout, not whatever is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def record(path: Path, timeout: int = 600) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="names or paths (default: all of notebooks/)")
    args = ap.parse_args(argv)
    paths = [Path(n) if n.endswith(".ipynb") else NOTEBOOKS / f"{n}.ipynb" for n in args.notebooks]
    paths = paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"no such notebook: {missing[0]} (choose from {', '.join(p.stem for p in sorted(NOTEBOOKS.glob('*.ipynb')))})",
              file=sys.stderr)
        return 2
    use_test_environment()
    for path in paths:
        print(f"recording {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} …", flush=True)
        record(path)
    print("done: review `git diff notebooks/` before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
