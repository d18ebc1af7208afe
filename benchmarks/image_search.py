"""Image indexing throughput and text-query latency: gpte's default image–text model beside open_clip ViT-B-32.

    python benchmarks/image_search.py [--n-throughput 256] [--index-size 10000] [--queries 100] [--device cpu]

1. **Indexing images/s** (decode, preprocess, encode, from files): ``lit-lite0-minilm`` through
   :class:`gpte.multimodal.ImageSearch` machinery (``encode_image`` on file paths) and open_clip's ViT-B-32 (random
   weights: speed does not depend on their values) used directly (``Image.open().convert``, its eval transform,
   ``encode_image``), on the same ``--n-throughput`` real clip-art PNGs, alternating runs, median of ``--repeats``.
2. **End-to-end index** of a folder of ``--index-size`` real images (openclipart, then Twemoji to fill up; copied into
   a temporary folder) with ``ImageSearch.index()``: images/s over the whole run (file listing, hashing, decoding,
   embedding, saving).
3. **Text-query latency** on that index: ``--queries`` captions, one query at a time (embed the text, exact search,
   collapse duplicates), p50 and p95 in milliseconds.

Needs the image–caption data (``gpte.data.image_text.install_data``; apt-get needs root).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

logger = logging.getLogger("benchmarks.image_search")


def _throughput(paths: list[Path], batch_size: int, repeats: int, device: str) -> dict[str, float]:
    import open_clip
    import torch
    from PIL import Image

    import gpte

    ours = gpte.load("lit-lite0-minilm", device=device)
    clip, _, transform = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None, device=device)
    clip.eval()

    def run_ours() -> float:
        t0 = time.perf_counter()
        ours.encode_image(paths, batch_size=batch_size)
        return len(paths) / (time.perf_counter() - t0)

    @torch.inference_mode()
    def run_clip() -> float:
        t0 = time.perf_counter()
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start:start + batch_size]])
            clip.encode_image(batch.to(device))
        return len(paths) / (time.perf_counter() - t0)

    run_ours(), run_clip()  # warm-up
    ours_s, clip_s = [], []
    for _ in range(repeats):
        clip_s.append(run_clip())
        ours_s.append(run_ours())
    a, b = statistics.median(ours_s), statistics.median(clip_s)
    return {"gpte_lit_images_per_s": round(a, 1), "open_clip_vit_b32_images_per_s": round(b, 1),
            "ratio": round(a / b, 2), "runs_gpte": [round(x, 1) for x in ours_s],
            "runs_open_clip": [round(x, 1) for x in clip_s]}


def _index_and_query(files: list[Path], n_queries: int, device: str) -> dict[str, float]:
    import numpy as np

    import gpte
    from gpte.multimodal import ImageSearch

    with tempfile.TemporaryDirectory(prefix="gpte-imgbench-") as tmp:
        folder = Path(tmp) / "images"
        for i, f in enumerate(files):
            dest = folder / f"{i // 1000:02d}" / f"{i:05d}-{f.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
        search = ImageSearch(folder, model=gpte.load("lit-lite0-minilm", device=device))
        report = search.index()
        from gpte.data.image_text import image_caption_pairs

        captions = sorted({p.caption for p in image_caption_pairs(("openclipart",))})
        rng = np.random.default_rng(0)
        queries = [captions[i] for i in rng.choice(len(captions), size=n_queries, replace=False)]
        search.search(queries[0], k=10)  # warm-up
        times = []
        for q in queries:
            t0 = time.perf_counter()
            search.search(q, k=10)
            times.append((time.perf_counter() - t0) * 1000)
        again = search.index()
    return {"index_images": report.images_indexed, "index_seconds": report.seconds,
            "index_images_per_s": round(report.images_per_second, 1), "skipped": len(report.skipped),
            "duplicates": len(report.duplicates), "reindex_unchanged_seconds": again.seconds,
            "query_ms_p50": round(float(np.percentile(times, 50)), 1),
            "query_ms_p95": round(float(np.percentile(times, 95)), 1), "queries": n_queries}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-throughput", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--index-size", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-index", action="store_true", help="only the throughput comparison")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from gpte.data.image_text import image_caption_pairs
    from gpte.unimodal.image_io import ImageInputError, load_image

    pairs = image_caption_pairs(("openclipart", "twemoji"))
    clip_art = [Path(p.image) for p in pairs if p.source == "openclipart"]
    usable = []
    for f in clip_art[:: max(1, len(clip_art) // (2 * args.n_throughput))]:
        try:
            load_image(f)
            usable.append(f)
        except ImageInputError:
            continue
    result = {"device": args.device, "throughput": _throughput(usable[:args.n_throughput], args.batch_size,
                                                               args.repeats, args.device)}
    if not args.skip_index:
        files = [Path(p.image) for p in pairs][:args.index_size]
        result["index"] = _index_and_query(files, args.queries, args.device)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
