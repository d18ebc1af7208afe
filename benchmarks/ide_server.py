"""The IDE backend's service (what ``gpte ide serve`` and ``gpte ide http`` answer from) on the standard library.

    python benchmarks/ide_server.py [--files 1000] [--model code-minilm] [--queries 100] [--json]
    python benchmarks/ide_server.py --files 1000 --grow-to 50000     # both sizes in one run (~1 h on 2 CPUs)
    python benchmarks/ide_server.py --chunks 50000 --workspace /tmp/gpte-50k   # build once (~35 min on 2 CPUs)...
    python benchmarks/ide_server.py --chunks 50000 --workspace /tmp/gpte-50k   # ...then reuse its saved index

Default mode: the first ``--files`` standard-library ``.py`` files are copied into a temporary workspace and a
:class:`gpte.ide.WorkspaceService` indexes it from scratch in its background thread. Measured: time to the first
answer (a query that returns hits, while the first pass is still running: the partial answers an editor sees) and to
the end of the first pass; after one file is saved, the time until a query finds the file's new function (visible)
and until the index is saved (persisted); query latency p50 / p95 over ``--queries`` docstring queries, one at a time.

``--chunks N`` mode: the workspace holds enough copies of the standard library for N chunks (``copy00/``,
``copy01/`` ...); given ``--workspace PATH`` it is built there once and its index (``PATH/.gpte/code-index``) is
reused by later runs, which then only re-check file hashes. Measured: the same update and query latencies at that
size. The model load is timed apart and excluded from every figure.
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
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def stdlib_files(limit: int | None = None) -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if not {"site-packages", "__pycache__"} & set(p.relative_to(root).parts))
    return root, files[:limit] if limit else files


def copy_files(src_root: Path, files: list[Path], dest: Path) -> list[str]:
    rels = []
    for f in files:
        rel = f.relative_to(src_root)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest / rel)
        rels.append(rel.as_posix())
    return rels


def build_large_workspace(dest: Path, chunks: int) -> None:
    """Copies of the standard library under ``dest/copyNN/`` until they hold at least ``chunks`` chunks."""
    from gpte.code import chunk_source

    src, files = stdlib_files()
    per_copy = 0
    for f in files:
        try:
            per_copy += len(chunk_source(f.read_bytes(), "python", f.name))
        except Exception:  # files the chunker refuses are skipped by the index too
            continue
    copies = -(-chunks // max(1, per_copy))
    print(f"building {dest}: {copies} copies of {len(files)} files (~{per_copy} chunks each)", file=sys.stderr)
    for i in range(copies):
        copy_files(src, files, dest / f"copy{i:02d}")


def _percentiles(lat: list[float]) -> tuple[float, float]:
    lat = sorted(lat)
    return round(1000 * statistics.median(lat), 1), round(1000 * lat[int(0.95 * (len(lat) - 1))], 1)


def measure_update(service: Any, target: Path) -> dict[str, float]:
    """Save one file (append a function), tell the service as an editor's didSave does, and time two moments: the
    new chunks searchable (the service's progress report at 100 %) and the index saved (the service idle)."""
    rel = target.relative_to(service.root).as_posix()
    name = f"added_for_benchmark_{int(time.time() * 1000) % 100000}"
    applied: list[float] = []
    service.on_progress = lambda ev: applied.append(time.perf_counter()) if ev.kind == "report" else None
    target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef {name}(x):\n    return x + 1\n", encoding="utf-8")
    t0 = time.perf_counter()
    service.notify_changed([rel])
    service.wait_idle()
    persisted = time.perf_counter() - t0
    service.on_progress = None
    if not any(h.symbol == name for h in service.search(name, k=100, path_glob=rel).hits):
        raise RuntimeError(f"the function added to {rel} was not found after the update")
    visible = (applied[-1] - t0) if applied else persisted
    return {"update_visible_s": round(visible, 3), "update_persisted_s": round(persisted, 3),
            "update_file_chunks": service.status()["last_update"]["chunks_added"]}


def measure_queries(service: Any, rels: set[str] | None, n: int) -> dict[str, Any]:
    from gpte.data.stdlib import stdlib_functions

    fns = [f for f in stdlib_functions() if rels is None or f.path in rels][:n]
    lat = []
    for fn in fns:
        t0 = time.perf_counter()
        service.search(fn.summary, k=10)
        lat.append(time.perf_counter() - t0)
    p50, p95 = _percentiles(lat)
    return {"query_p50_ms": p50, "query_p95_ms": p95, "queries": len(lat)}


def grow(service: Any, work: Path, present: set[str], chunks: int, queries: int) -> dict[str, Any]:
    """Add the rest of the standard library (then copies of it, ``copyNN/``) to the served workspace, as files
    appearing while the server runs, until the index holds ``chunks`` chunks; then time an update and queries."""
    src, files = stdlib_files()
    t0 = time.perf_counter()
    added = copy_files(src, [f for f in files if f.relative_to(src).as_posix() not in present], work)
    service.notify_changed(added)
    service.wait_idle()
    copy = 0
    while service.status()["chunks"] < chunks:
        added = [f"copy{copy:02d}/{rel}" for rel in copy_files(src, files, work / f"copy{copy:02d}")]
        service.notify_changed(added)
        service.wait_idle()
        copy += 1
    grow_s = time.perf_counter() - t0
    status = service.status()
    out: dict[str, Any] = {"grow_s": round(grow_s, 1), "indexed_files": status["files"], "chunks": status["chunks"]}
    listed = sorted(service.code_search.indexed_files())
    out.update(measure_update(service, work / listed[len(listed) // 3]))
    out.update(measure_queries(service, None, queries))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="code-minilm")
    ap.add_argument("--files", type=int, default=1000, help="standard-library files in the first-index run")
    ap.add_argument("--chunks", type=int, default=None, help="measure at this many chunks instead (e.g. 50000)")
    ap.add_argument("--workspace", default=None, help="--chunks: build the workspace here / reuse it and its index")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--grow-to", type=int, default=None,
                    help="after the first-index run, add the rest of the standard library to the served workspace "
                         "until the index holds this many chunks (e.g. 50000), then time update and queries again")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import gpte
    from gpte.ide import WorkspaceService

    t0 = time.perf_counter()
    model = gpte.load(args.model)
    load_s = time.perf_counter() - t0
    temp = None
    if args.chunks is None:
        temp = work = Path(tempfile.mkdtemp(prefix="gpte-ide-bench-"))
    else:
        work = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="gpte-ide-bench-large-"))
        temp = None if args.workspace else work
        if not (work / "copy00").is_dir():
            build_large_workspace(work, args.chunks)
    try:
        result: dict[str, Any] = {"model": args.model, "model_load_s": round(load_s, 1), "cpus": os.cpu_count()}
        rels: set[str] | None = None
        if args.chunks is None:
            src, files = stdlib_files(args.files)
            rels = set(copy_files(src, files, work))
            result["files"] = len(rels)
        service = WorkspaceService(work, model=model, watch=False)
        t0 = time.perf_counter()
        service.start()
        first = None
        while not service.wait_idle(0.05):
            if first is None and service.search("read the lines of a text file", k=1).hits:
                first = time.perf_counter() - t0
        complete = time.perf_counter() - t0
        first = complete if first is None else first
        status = service.status()
        result.update({"first_answer_s": round(first, 2), "first_pass_s": round(complete, 1),
                       "indexed_files": status["files"], "chunks": status["chunks"],
                       "files_embedded": (status["last_update"] or {}).get("files_indexed")})
        listed = sorted(p for p in (rels or {h for h in service.code_search.indexed_files()}) if p.endswith(".py"))
        result.update(measure_update(service, work / listed[len(listed) // 2]))
        result.update(measure_queries(service, None if args.chunks else rels, args.queries))
        print(json.dumps(result), file=sys.stderr, flush=True)
        if args.grow_to and args.chunks is None:
            result["grown"] = grow(service, work, rels or set(), args.grow_to, args.queries)
        service.close()
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
