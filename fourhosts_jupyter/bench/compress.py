"""Compression: ``python -m fourhosts_jupyter.bench compress``.

- Extractive compression of a ~20,000-word input (the bundled corpus, repeated with varied
  sentences) to 500 tokens, against the baseline of embedding its sentences once (the part no
  extractive method can skip), both in this process.
- Per host style: keyword retention (host keywords found in the source that the summary keeps)
  and similarity to the source, extractive vs plain truncation as the baseline, over the corpus
  at 25 % of each document's tokens.
- Token counting: the estimator's speed, and its error against exact cl100k counts when an exact
  encoder (``bpe_openai``) happens to be importable.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path


def _corpus() -> list[str]:
    d = Path(__file__).resolve().parents[1] / "data" / "corpus"
    return [p.read_text(encoding="utf-8") for p in sorted(d.glob("*.md"))]


def _long_input(words: int) -> str:
    from ..context.compress import split_sentences

    docs, parts, r = _corpus(), [], 0
    while sum(len(p.split()) for p in parts) < words:
        for d in docs:  # later rounds vary each sentence so nothing is a cached duplicate
            sents = split_sentences(d)
            parts.append("\n".join(f"In district {r}, {s[0].lower()}{s[1:]}" if r else s for s in sents))
        r += 1
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench compress")
    ap.add_argument("--words", type=int, default=20_000)
    ap.add_argument("--target", type=int, default=500)
    ap.add_argument("--embedder", choices=("local", "hashing"), default="local")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from ..context.compress import _Vectors, compress, split_sentences
    from ..context.tokens import count_tokens
    from ..memory.embeddings import HashingEmbedder, get_embedder
    from ..paradigms import HOSTS, profile

    emb = HashingEmbedder() if args.embedder == "hashing" else get_embedder()
    emb.embed(["warm up"])
    print(f"embedder: {emb.name}")

    text = _long_input(args.words)
    t = time.perf_counter()
    n_tokens = count_tokens(text)
    tcount = time.perf_counter() - t
    print(f"input: {len(text.split()):,} words, {n_tokens:,} tokens (estimated in {tcount * 1000:.0f} ms, "
          f"{len(text.split()) / tcount / 1e6:.2f} M words/s)")
    _exact_counts(text)

    sents = split_sentences(text)
    t = time.perf_counter()
    _Vectors(emb).of(sents)
    base = time.perf_counter() - t
    t = time.perf_counter()
    r = compress(text, host="bernard", target_tokens=args.target, embedder=emb)
    took = time.perf_counter() - t
    print(f"baseline: embedding {len(sents):,} sentences once: {base:.2f} s")
    print(f"extractive compression to {args.target} tokens: {took:.2f} s (ratio to baseline {took / base:.2f}×); "
          f"provider {r.provider}, depth {r.depth}, {len(r.trace)} passes, {r.tokens_out} tokens, "
          f"similarity {r.similarity:.3f}, keywords kept {len(r.kept_keywords)}/"
          f"{len(r.kept_keywords) + len(r.missing_keywords)}")

    print("\nper host style, corpus documents compressed to 25 % (extractive vs truncation baseline):")
    print(f"{'host':8s} {'style':9s} {'kw kept (extr)':>15s} {'kw kept (trunc)':>16s} "
          f"{'sim (extr)':>11s} {'sim (trunc)':>12s} {'extractive used':>16s}")
    docs = _corpus()
    vec = _Vectors(emb)
    for host in HOSTS:
        prof = profile(host)
        pats = [re.compile(rf"\b{re.escape(k)}\w*" if len(k) > 3 else rf"\b{re.escape(k)}\b", re.I)
                for k in prof.keep_keywords]
        kw_e, kw_t, sim_e, sim_t, used = [], [], [], [], 0
        for d in docs:
            target = max(50, round(count_tokens(d) * 0.25))
            present = [p for p in pats if p.search(d)]
            e = compress(d, host=host, target_tokens=target, embedder=emb)
            tr = compress(d, host=host, target_tokens=target, embedder=emb, min_similarity=2.0)
            used += e.provider == "extractive"
            src = vec.doc(d)
            for res, kw, sim in ((e, kw_e, sim_e), (tr, kw_t, sim_t)):
                if present:
                    kw.append(sum(bool(p.search(res.text)) for p in present) / len(present))
                v = vec.doc(res.text)
                sim.append(float(v @ src) if v is not None and src is not None else 0.0)
        print(f"{host.value:8s} {prof.compress_style:9s} {statistics.mean(kw_e):15.2f} "
              f"{statistics.mean(kw_t):16.2f} {statistics.mean(sim_e):11.3f} "
              f"{statistics.mean(sim_t):12.3f} {used:>9d}/{len(docs)}")
    return 0


def _exact_counts(text: str) -> None:
    try:
        import bpe_openai  # optional: an exact cl100k encoder, not a dependency
    except ImportError:
        print("exact cl100k encoder not installed: estimator error not measured "
              "(pip install bpe-openai to measure it)")
        return
    from ..context.tokens import count_tokens

    enc = bpe_openai.get_encoding("cl100k_base")
    samples = _corpus() + [text]
    errs = [(count_tokens(s) - len(enc.encode(s))) / len(enc.encode(s)) for s in samples]
    print(f"estimator vs exact cl100k on {len(samples)} texts: mean |error| "
          f"{statistics.mean(abs(e) for e in errs) * 100:.1f} %, max {max(abs(e) for e in errs) * 100:.1f} %")
