"""Encoding speed of the universal default beside the dual-tower default, in one process on the same inputs.

    python benchmarks/universal_vs_dual.py [--n-images 256] [--n-texts 512] [--repeats 3] [--device cpu]

``universal-lite0-minilm`` reads every input through MiniLM with an instruction (images as five visual tokens
after EfficientNet-Lite0); ``lit-lite0-minilm`` runs EfficientNet-Lite0 + a head for images and MiniLM + a head for
texts. Measured, alternating runs, median of ``--repeats``: images/s for candidate images from PNG files (decode,
preprocess, encode), texts/s for caption queries, and one-query latency (embed one caption) p50 in milliseconds.
The ratio column is universal / dual (above 1: the universal embedder is faster).

Needs Debian's clip art (``apt-get install openclipart-png``); the recipe's held-out figures are in
``runs/universal-lite0-minilm/metrics.json`` after ``gpte train recipes/universal-lite0-minilm.toml``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

logger = logging.getLogger("benchmarks.universal_vs_dual")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=256)
    ap.add_argument("--n-texts", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    import gpte
    from gpte.data.image_text import image_caption_pairs

    pairs = image_caption_pairs(("openclipart",))[: max(args.n_images, args.n_texts)]
    if len(pairs) < args.n_images:
        logger.error("need %d clip-art images, found %d: apt-get install openclipart-png", args.n_images, len(pairs))
        return 1
    paths = [Path(p.image) for p in pairs[: args.n_images]]
    texts = [p.caption for p in pairs][: args.n_texts]
    models = {"universal": gpte.load("universal-lite0-minilm", device=args.device),
              "dual": gpte.load("lit-lite0-minilm", device=args.device)}
    runs: dict[str, dict[str, list[float]]] = {name: {"images": [], "texts": [], "query_ms": []} for name in models}
    with torch.inference_mode():
        for m in models.values():  # warm-up
            m.encode_document(paths[:8])
            m.encode_query(texts[:8], task="text-to-image")
        for _ in range(args.repeats):
            for name, m in models.items():
                runs[name]["images"].append(len(paths) / _timed(lambda m=m: m.encode_document(paths)))
                runs[name]["texts"].append(len(texts) / _timed(lambda m=m: m.encode_query(texts, task="text-to-image")))
                lat = [_timed(lambda m=m, t=t: m.encode_query(t, task="text-to-image")) * 1e3 for t in texts[:50]]
                runs[name]["query_ms"].append(statistics.median(lat))
    result = {name: {k: round(statistics.median(v), 2) for k, v in r.items()} for name, r in runs.items()}
    result["ratio_universal_over_dual"] = {
        "images_per_s": round(result["universal"]["images"] / result["dual"]["images"], 3),
        "texts_per_s": round(result["universal"]["texts"] / result["dual"]["texts"], 3),
        "query_ms": round(result["universal"]["query_ms"] / result["dual"]["query_ms"], 3),
    }
    result["machine"] = {"device": args.device, "threads": torch.get_num_threads(), "n_images": len(paths),
                         "n_texts": len(texts), "repeats": args.repeats}
    for name in models:
        r = result[name]
        logger.info("%-10s %8.1f images/s %8.1f texts/s %7.1f ms/query (median)", name, r["images"], r["texts"],
                    r["query_ms"])
    logger.info("universal / dual: %s", result["ratio_universal_over_dual"])
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
