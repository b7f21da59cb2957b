"""README.md: the install lines a newcomer copies, and the Binder launch link."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def test_the_public_index_install_takes_torch_from_the_cpu_wheel_index():
    binder = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^torch==(\S+)$", binder, re.M).group(1)
    assert CPU_INDEX in binder
    # the same torch as Binder, from the same CPU index, in a command the reader can copy
    assert f"pip install torch=={pinned} --index-url {CPU_INDEX}" in README
    # and the set-up used on machines whose index serves the CPU wheel stays as it was
    assert f".venv/bin/pip install torch=={pinned} && .venv/bin/pip install -e '.[test]'" in README


def test_binder_badge_and_launch_link_share_one_placeholder():
    links = re.findall(r"^\[binder\]: (\S+)$", README, re.M)
    assert links == ["https://mybinder.org/v2/gh/OWNER/REPO/HEAD?urlpath=lab/tree/notebooks/01-quickstart.ipynb"]
    assert (ROOT / "notebooks" / "01-quickstart.ipynb").exists()
    assert "(https://mybinder.org/badge_logo.svg)][binder]" in README  # the badge
    assert README.count("][binder]") >= 2  # badge and launch link, both by reference
    assert README.count("OWNER/REPO") == 2  # the link and the comment that says to replace it
