"""all-MiniLM-L6-v2's forward pass in NumPy, for a few short texts (a question, its clauses).

Why: embedding one question through sentence-transformers first imports torch and transformers
(4-6 s on a quiet machine, 15 s on a busy one), which dominated the first ``%%research`` of a
kernel. The same weights (memory-mapped from the package's ``model.safetensors``) and the same
tokenizer (``tokenizers``, already a dependency) give the same vectors in float32, verified
against the torch model in ``tests/test_numpy_encoder.py``; torch stays the path for batches,
where it is faster (and may use bf16).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

_DTYPES = {"F32": np.float32, "I64": np.int64}


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read-only arrays memory-mapped from a safetensors file (8-byte header size, JSON header,
    then raw little-endian tensors): nothing is copied until used."""
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in _DTYPES:
            continue
        start, end = info["data_offsets"]
        out[name] = data[start:end].view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def _weights(path: Path) -> dict[str, np.ndarray]:
    """The tensors, aligned in memory (an unaligned view makes NumPy's matmul skip BLAS, 100x
    slower) and the linear layers transposed once; the large token table stays mapped."""
    out = {}
    for name, arr in _safetensors(path).items():
        if name == "embeddings.word_embeddings.weight":
            out[name] = arr  # only the rows of a question's tokens are read
        elif name.endswith(".weight") and arr.ndim == 2 and name.startswith("encoder."):
            out[name] = np.ascontiguousarray(arr.T)
        else:
            out[name] = np.array(arr)
    return out


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # the exact GELU BERT uses (not the tanh approximation)

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


class NumpyMiniLM:
    """Mean-pooled BERT sentence embeddings (unit length) from a sentence-transformers folder."""

    def __init__(self, model_dir: str | Path) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        cfg = json.loads((model_dir / "config.json").read_text("utf-8"))
        st = json.loads((model_dir / "sentence_bert_config.json").read_text("utf-8"))
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["layer_norm_eps"])
        if cfg.get("hidden_act") != "gelu" or cfg.get("model_type") != "bert":
            raise ValueError(f"{model_dir}: not a BERT model with GELU")
        self.w = _weights(model_dir / "model.safetensors")
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=int(st["max_seq_length"]))  # as sentence-transformers
        tok.no_padding()
        self.tok = tok
        self._lock = threading.Lock()  # the Rust tokenizer's settings are shared state

    def _p(self, name: str) -> np.ndarray:
        return self.w[name]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            encs = self.tok.encode_batch(list(texts))
        n, length = len(encs), max(len(e.ids) for e in encs)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1.0
        p = self._p
        x = (p("embeddings.word_embeddings.weight")[ids]
             + p("embeddings.position_embeddings.weight")[:length][None]
             + p("embeddings.token_type_embeddings.weight")[0])
        x = _layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), self.eps)
        hidden = x.shape[-1]
        d = hidden // self.heads
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for i in range(self.layers):
            pre = f"encoder.layer.{i}."

            def lin(h: np.ndarray, name: str) -> np.ndarray:
                # 2-D for BLAS (a stacked matmul was 3x slower); weights stored transposed
                w = p(pre + name + ".weight")  # noqa: B023
                out = h.reshape(-1, h.shape[-1]) @ w + p(pre + name + ".bias")  # noqa: B023
                return out.reshape(n, length, w.shape[1])

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(n, length, self.heads, d).transpose(0, 2, 1, 3)

            q = split(lin(x, "attention.self.query"))
            k = split(lin(x, "attention.self.key"))
            v = split(lin(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            ctx = (scores / scores.sum(-1, keepdims=True)) @ v
            ctx = ctx.transpose(0, 2, 1, 3).reshape(n, length, hidden)
            x = _layer_norm(lin(ctx, "attention.output.dense") + x,
                            p(pre + "attention.output.LayerNorm.weight"),
                            p(pre + "attention.output.LayerNorm.bias"), self.eps)
            ff = lin(_gelu(lin(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(ff + x, p(pre + "output.LayerNorm.weight"), p(pre + "output.LayerNorm.bias"), self.eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        pooled = pooled.astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return pooled / norms
