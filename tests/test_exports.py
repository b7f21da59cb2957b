"""The public face: ``__all__`` names exactly what is public, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import fourhosts_jupyter


def test_all_matches_public_names():
    public = {name for name in dir(fourhosts_jupyter) if not name.startswith("_")}
    # submodules that happen to be imported are attributes too; they are not API
    public = {n for n in public if not isinstance(getattr(fourhosts_jupyter, n), type(sys))}
    assert set(fourhosts_jupyter.__all__) == public
    assert fourhosts_jupyter.__all__ == sorted(fourhosts_jupyter.__all__)


def test_every_exported_name_resolves():
    for name in fourhosts_jupyter.__all__:
        assert getattr(fourhosts_jupyter, name) is not None


def test_import_and_load_ext_do_not_import_heavy_libraries():
    code = (
        "import sys, fourhosts_jupyter\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'fourhosts_jupyter')\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'faiss', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"
