"""Index benchmark: build time, batched queries/s, recall@10 against the exact oracle, bytes per vector.

    python benchmarks/index.py --sizes 100000 1000000 --dim 384 --queries 1000 [--runs 3] [--json]

Vectors are a Gaussian mixture (``--centres`` centres in ``--dim`` dimensions, L2-normalised), the shape of real
embedding collections; on uniform random vectors ANN recall is meaningless. Ground truth is the exact float32
backend's top-10 (computed for ``--gt-queries`` queries, all by default). Build time is one run; queries/s is the
median of ``--runs`` batched searches of all queries with k=10. Bytes per vector: in memory (``index.nbytes()``)
and on disk (the saved vector file), both divided by the collection size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpte.index import create_index, list_versions  # noqa: E402

# (label, backend, spec, precision, options); option "rescore" sets the binary re-ranking factor, the rest go to
# create_index
CONFIGS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("exact fp32", "exact", "auto", "float32", {}),
    ("exact int8", "exact", "auto", "int8", {}),
    ("exact binary", "exact", "auto", "binary", {}),
    ("exact bin hamming", "exact", "auto", "binary", {"rescore": 1}),
    ("faiss Flat", "faiss", "Flat", "float32", {}),
    ("faiss auto (IVF)", "faiss", "auto", "float32", {}),
    ("faiss HNSW32", "faiss", "HNSW32", "float32", {}),
    ("faiss HNSW32 ef256", "faiss", "HNSW32", "float32", {"ef_search": 256}),
    ("faiss SQ8 (int8)", "faiss", "Flat", "int8", {}),
    ("faiss IVF+SQ8", "faiss", "auto", "int8", {}),
    ("faiss binary", "faiss", "Flat", "binary", {}),
    ("faiss binary HNSW", "faiss", "HNSW32", "binary", {}),
]


def mixture(n: int, centres: np.ndarray, seed: int, noise: float = 0.6) -> np.ndarray:
    """``n`` points around random ``centres`` (``(c, d)``), L2-normalised, float32, generated in blocks."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, centres.shape[1]), dtype=np.float32)
    scale = noise / np.sqrt(centres.shape[1])
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, len(centres), m)] + scale * rng.standard_normal((m, centres.shape[1]), np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def disk_bytes(path: Path) -> int:
    version = path / list_versions(path)[-1]
    return sum(f.stat().st_size for f in version.iterdir() if f.name in ("vectors.npy", "index.faiss", "ranges.npy"))


def run_config(
    cfg: tuple[str, str, str, str, dict[str, Any]], x: np.ndarray, q: np.ndarray, truth: list[set], runs: int
) -> dict[str, Any]:
    label, backend, spec, precision, options = cfg
    options = dict(options)
    rescore = options.pop("rescore", None)
    ids = np.arange(len(x)).tolist()
    idx = create_index(x.shape[1], backend=backend, spec=spec, precision=precision, **options)
    if rescore is not None:
        idx.rescore = rescore
    t0 = time.perf_counter()
    idx.add(ids, x)
    build = time.perf_counter() - t0
    times, hits = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        hits = idx.search(q, k=10)
        times.append(time.perf_counter() - t0)
    rec = float(np.mean([len({h.id for h in hits[i]} & t) / 10 for i, t in enumerate(truth)]))
    with tempfile.TemporaryDirectory() as tmp:
        idx.save(Path(tmp) / "ix")
        disk = disk_bytes(Path(tmp) / "ix")
    return {
        "size": len(x),
        "config": label,
        "spec": idx.spec,
        "precision": precision,
        "build_s": round(build, 2),
        "qps": round(len(q) / statistics.median(times), 1),
        "recall@10": round(rec, 4),
        "mem_bytes_per_vec": round(idx.nbytes() / len(x), 1),
        "disk_bytes_per_vec": round(disk / len(x), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--gt-queries", type=int, default=None, help="queries scored for recall (default: all)")
    ap.add_argument("--centres", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, help="substrings of config labels to run")
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.centres, args.dim)).astype(np.float32) / np.sqrt(args.dim)
    configs = [c for c in CONFIGS if args.only is None or any(s in c[0] for s in args.only)]
    results = []
    header = (
        f"{'size':>9} {'config':<18} {'spec':<14} {'build s':>8} {'q/s':>9} {'R@10':>6} {'mem B/v':>8} {'disk B/v':>8}"
    )
    if not args.json:
        print(header)
    for size in args.sizes:
        x = mixture(size, centres, seed=1)
        q = mixture(args.queries, centres, seed=2)
        n_gt = min(args.gt_queries or args.queries, args.queries)
        oracle = create_index(args.dim, backend="exact")
        oracle.add(np.arange(size).tolist(), x)
        truth = [{h.id for h in row} for row in oracle.search(q[:n_gt], k=10)]
        del oracle
        for cfg in configs:
            res = run_config(cfg, x, q, truth, args.runs)
            results.append(res)
            if args.json:
                print(json.dumps(res), flush=True)
            else:
                print(
                    f"{res['size']:>9} {res['config']:<18} {res['spec']:<14} {res['build_s']:>8.2f} {res['qps']:>9.0f} "
                    f"{res['recall@10']:>6.3f} {res['mem_bytes_per_vec']:>8.1f} {res['disk_bytes_per_vec']:>8.1f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
