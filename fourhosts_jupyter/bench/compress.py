"""Compression: ``python -m fourhosts_jupyter.bench compress``.

- Extractive compression of a ~20,000-word input (the bundled corpus, repeated with varied
  sentences) to 500 tokens, against the baseline of embedding its sentences once (the part no
  extractive method can skip), both in this process.
- Per host style, over the corpus at 25 % of each document's tokens, extractive vs plain
  truncation as the baseline: the share of questions answerable from the original that stay
  answerable from the compressed text (``tests/data/compress_questions.jsonl``: 35 questions,
  each answered by one sentence of its document holding all of its answer terms; the judging
  measure, since compression optimises neither it nor the questions), then the two measures
  compression does optimise, host-keyword retention and similarity to the source.
- Timings are medians over ``--rounds`` runs.
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
    ap.add_argument("--rounds", type=int, default=5, help="timed runs per figure (medians)")
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
    bases, tooks = [], []
    for _ in range(args.rounds):  # interleaved, each with a fresh vector cache
        t = time.perf_counter()
        _Vectors(emb).of(sents)
        bases.append(time.perf_counter() - t)
        t = time.perf_counter()
        r = compress(text, host="bernard", target_tokens=args.target, embedder=emb)
        tooks.append(time.perf_counter() - t)
    base, took = statistics.median(bases), statistics.median(tooks)
    ratio = statistics.median(a / b for a, b in zip(tooks, bases))
    print(f"baseline: embedding {len(sents):,} sentences once: {base:.2f} s (median of {args.rounds})")
    print(f"extractive compression to {args.target} tokens: {took:.2f} s (median of {args.rounds}; "
          f"median ratio to baseline {ratio:.2f}×); "
          f"provider {r.provider}, depth {r.depth}, {len(r.trace)} passes, {r.tokens_out} tokens, "
          f"similarity {r.similarity:.3f}, keywords kept {len(r.kept_keywords)}/"
          f"{len(r.kept_keywords) + len(r.missing_keywords)}")

    questions = _questions()
    print("\nper host style, corpus documents compressed to 25 % (extractive vs truncation baseline):")
    if questions is None:
        print("(answerability: skipped, tests/data/compress_questions.jsonl needs a source checkout)")
    print(f"{'host':8s} {'style':9s} {'answerable (extr)':>18s} {'answerable (trunc)':>19s} "
          f"{'kw kept (extr)':>15s} {'kw kept (trunc)':>16s} "
          f"{'sim (extr)':>11s} {'sim (trunc)':>12s} {'extractive used':>16s}")
    names = _corpus_names()
    docs = _corpus()
    vec = _Vectors(emb)
    for host in HOSTS:
        prof = profile(host)
        pats = [re.compile(rf"\b{re.escape(k)}\w*" if len(k) > 3 else rf"\b{re.escape(k)}\b", re.I)
                for k in prof.keep_keywords]
        kw_e, kw_t, sim_e, sim_t, used = [], [], [], [], 0
        ans_e = ans_t = asked = 0
        for name, d in zip(names, docs):
            target = max(50, round(count_tokens(d) * 0.25))
            present = [p for p in pats if p.search(d)]
            e = compress(d, host=host, target_tokens=target, embedder=emb)
            tr = compress(d, host=host, target_tokens=target, embedder=emb, min_similarity=2.0)
            used += e.provider == "extractive"
            src = vec.doc(d)
            for q in (questions or {}).get(name, []):
                asked += 1
                ans_e += _answerable(e.text, q)
                ans_t += _answerable(tr.text, q)
            for res, kw, sim in ((e, kw_e, sim_e), (tr, kw_t, sim_t)):
                if present:
                    kw.append(sum(bool(p.search(res.text)) for p in present) / len(present))
                v = vec.doc(res.text)
                sim.append(float(v @ src) if v is not None and src is not None else 0.0)
        share = (lambda k: f"{k / asked:.2f} ({k}/{asked})") if asked else (lambda k: "-")
        print(f"{host.value:8s} {prof.compress_style:9s} {share(ans_e):>18s} {share(ans_t):>19s} "
              f"{statistics.mean(kw_e):15.2f} "
              f"{statistics.mean(kw_t):16.2f} {statistics.mean(sim_e):11.3f} "
              f"{statistics.mean(sim_t):12.3f} {used:>9d}/{len(docs)}")
    return 0


def _corpus_names() -> list[str]:
    d = Path(__file__).resolve().parents[1] / "data" / "corpus"
    return [p.name for p in sorted(d.glob("*.md"))]


def _questions() -> dict[str, list[list[str]]] | None:
    """Answer terms per corpus document, for the questions each original answers."""
    import json

    path = Path(__file__).resolve().parents[2] / "tests" / "data" / "compress_questions.jsonl"
    if not path.exists():
        return None
    out: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            out.setdefault(q["doc"], []).append(q["answer"])
    return out


def _answerable(text: str, terms: list[str]) -> bool:
    """One sentence holds every answer term (a reader could answer from it alone). Markdown
    emphasis and list markers a host style adds are taken out first, so a term in bold counts."""
    from ..context.compress import split_sentences

    plain = re.sub(r"(\*\*|__|(?m:^\s*(?:[-*•]|\d+\.)\s+))", "", text)
    return any(all(t.lower() in s.lower() for t in terms) for s in split_sentences(plain))


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
