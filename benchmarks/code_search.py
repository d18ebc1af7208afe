"""Code search end to end on the CPython standard library: parse + chunk, embed, re-index after an edit, query.

    python benchmarks/code_search.py [--model code-minilm] [--limit-files N] [--queries 100]

The standard library's ``.py`` files (1,790 on Python 3.11, site-packages excluded) are copied into a temporary workspace, so
the edit step can change a file. Printed: files/s for parse and chunk alone, chunks/s for embedding, the total time
of the first ``CodeSearch.index()``, the time of ``update()`` after one file changed, and query latency p50 / p95
over ``--queries`` docstring queries (one query at a time, as an editor sends them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def stdlib_files(limit: int | None, with_tests: bool = True) -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "__pycache__"} | (set() if with_tests else {"test", "tests", "idle_test"})
    files = sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))
    return root, files[:limit] if limit else files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="code-minilm")
    ap.add_argument("--limit-files", type=int, default=None)
    ap.add_argument("--no-tests", action="store_true", help="leave out the stdlib's test folders (734 of 1,790 files)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import gpte
    from gpte.code import CodeSearch, chunk_source
    from gpte.data.stdlib import stdlib_functions

    root, files = stdlib_files(args.limit_files, with_tests=not args.no_tests)
    work = Path(tempfile.mkdtemp(prefix="gpte-code-bench-"))
    try:
        for f in files:
            dest = work / f.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
        rels = [f.relative_to(root).as_posix() for f in files]
        t0 = time.perf_counter()
        n_chunks = sum(len(chunk_source((work / r).read_bytes(), "python", r)) for r in rels)
        chunk_s = time.perf_counter() - t0
        model = gpte.load(args.model)
        engine = CodeSearch(work, model=model)
        t0 = time.perf_counter()
        report = engine.index()
        index_s = time.perf_counter() - t0
        embed_s = max(1e-9, index_s - chunk_s)
        target = work / rels[len(rels) // 2]
        target.write_text(target.read_text(encoding="utf-8") + "\n\ndef added_for_benchmark(x):\n    return x + 1\n",
                          encoding="utf-8")
        t0 = time.perf_counter()
        upd = engine.update([target])
        update_s = time.perf_counter() - t0
        fns = [f for f in stdlib_functions() if f.path in set(rels)][: args.queries]
        lat = []
        for fn in fns:
            t0 = time.perf_counter()
            engine.search(fn.summary, k=10)
            lat.append(time.perf_counter() - t0)
        lat.sort()
        result = {
            "files": len(rels), "chunks": n_chunks, "chunk_files_per_s": round(len(rels) / chunk_s, 1),
            "embed_chunks_per_s": round(report.chunks_added / embed_s, 1), "index_total_s": round(index_s, 1),
            "update_one_file_s": round(update_s, 3), "update_chunks_added": upd.chunks_added,
            "query_p50_ms": round(1000 * statistics.median(lat), 1),
            "query_p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1), "queries": len(lat),
            "skipped": len(report.skipped), "model": args.model,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
