"""The ``gpte`` command line: embed texts, build and search indexes, report the installation.

    gpte embed "some text" "another" --output vectors.npy
    gpte index build python-stdlib --out stdlib-index
    gpte search stdlib-index "read a file line by line" -k 5
    gpte train recipes/code-search-stdlib.toml
    gpte eval MODEL --data pairs.jsonl
    gpte code search PATH "parse a config file"
    gpte info

Every subcommand is a thin layer over the Python API. ``main(argv) -> int`` returns the exit status: 0 on success,
1 when the work failed (the message says why), 2 for a malformed command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # gpte never downloads models; fail fast if anything tries

logger = logging.getLogger("gpte.cli")

BUILTIN_CORPORA = {"python-stdlib": "docstrings of the documented functions of this Python's standard library"}
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".markdown"}
MAX_FILE_BYTES = 5_000_000


# ---------------------------------------------------------------------------------------------------- input sources
def _read_lines(stream: Any) -> list[str]:
    return [line.rstrip("\n") for line in stream]


def _embed_inputs(args: argparse.Namespace) -> list[str]:
    texts: list[str] = list(args.texts)
    if args.file:
        with open(args.file, encoding="utf-8") as fh:
            texts.extend(_read_lines(fh))
    if (not texts and not args.file) or args.texts == ["-"]:
        if sys.stdin.isatty():
            raise UsageError("no texts: give them as arguments, with --file, or on stdin")
        texts = [t for t in texts if t != "-"] + _read_lines(sys.stdin)
    return texts


def _stdlib_docs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    from gpte.data import stdlib_functions

    for fn in stdlib_functions():
        meta = {"module": fn.module, "qualname": fn.qualname, "path": fn.path, "line": fn.line}
        yield fn.id, f"{fn.qualname}: {fn.docstring}", meta


def _jsonl_docs(path: Path) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                logger.warning("%s:%d: skipped, not JSON (%s)", path, lineno, exc.msg)
                continue
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                logger.warning("%s:%d: skipped, expected an object with a string 'text'", path, lineno)
                continue
            text = record.pop("text")
            item_id = record.pop("id", f"{path.name}:{lineno}")
            if isinstance(item_id, bool) or not isinstance(item_id, str | int):
                logger.warning("%s:%d: skipped, 'id' must be a string or an integer", path, lineno)
                continue
            yield item_id, text, record


def _folder_docs(root: Path, glob: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in sorted(root.glob(glob)):
        if not path.is_file() or (glob == "**/*" and path.suffix.lower() not in TEXT_SUFFIXES):
            continue
        rel = path.relative_to(root).as_posix()
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                logger.warning("%s: skipped, larger than %d bytes", rel, MAX_FILE_BYTES)
                continue
            raw = path.read_bytes()
            if b"\0" in raw[:4096]:
                logger.warning("%s: skipped, looks binary", rel)
                continue
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("%s: skipped, %s", rel, exc)
            continue
        yield rel, text, {"path": rel}


def _corpus(source: str, glob: str) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    if source in BUILTIN_CORPORA:
        return _stdlib_docs()
    path = Path(source)
    if path.is_dir():
        return _folder_docs(path, glob)
    if path.is_file() and path.suffix == ".jsonl":
        return _jsonl_docs(path)
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            lines = [(f"{path.name}:{i}", line.rstrip("\n"), {"line": i}) for i, line in enumerate(fh, 1)]
        return iter([item for item in lines if item[1].strip()])
    raise UsageError(f"{source!r} is not a folder, a file, or a built-in corpus ({', '.join(BUILTIN_CORPORA)})")


def _unique(docs: Iterator[tuple[Any, str, dict[str, Any]]]) -> Iterator[tuple[Any, str, dict]]:
    """Drop repeated ids with a warning (the first occurrence wins), so one duplicate cannot sink a long build."""
    seen: set[Any] = set()
    for item in docs:
        if item[0] in seen:
            logger.warning("id %r appears more than once in the source; keeping the first", item[0])
            continue
        seen.add(item[0])
        yield item


class UsageError(Exception):
    """A command line that cannot be carried out as given (exit status 2)."""


# ---------------------------------------------------------------------------------------------------- subcommands
def _device_option(args: argparse.Namespace) -> dict[str, Any]:
    return {"device": args.device} if getattr(args, "device", None) else {}


def _load_model(args: argparse.Namespace) -> Any:
    import gpte

    return gpte.load(args.model or "minilm", **_device_option(args))


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from gpte.shared.inputs import text_problems

    texts = _embed_inputs(args)
    problems = text_problems(texts)
    if problems:
        logger.warning("skipping %d empty input(s): %s", len(problems),
                       ", ".join(f"#{i + 1}" for i in list(problems)[:20]))
    keep = [i for i in range(len(texts)) if i not in problems]
    if not keep:
        raise UsageError("nothing to embed: every input is empty")
    model = _load_model(args)
    encode = {"query": model.encode_query, "document": model.encode_document, "none": model.encode}[args.prompt]
    vectors = encode([texts[i] for i in keep], batch_size=args.batch_size, truncate_dim=args.truncate_dim,
                     precision=args.precision, show_progress=None if not args.quiet else False)
    out = args.output
    if out and out.endswith(".npy"):
        from gpte.shared.fsio import atomic_writer

        with atomic_writer(out) as fh:
            np.save(fh, vectors, allow_pickle=False)
        logger.info("wrote %s: %s %s", out, vectors.shape, vectors.dtype)
        return 0
    lines = (json.dumps({"index": i, "text": texts[i], "embedding": v.tolist()}) + "\n" for i, v in zip(keep, vectors, strict=True))
    if out:
        from gpte.shared.fsio import atomic_writer

        with atomic_writer(out, "w") as fh:
            fh.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory for the index")
    exists = out.is_dir() and any(out.iterdir())
    if exists and not (args.update or args.overwrite):
        raise UsageError(f"{out} already holds files: pass --update to add to it or --overwrite to replace it")
    with _process_group(args) as rank:
        return _build(args, out, exists, rank)


@contextlib.contextmanager
def _process_group(args: argparse.Namespace) -> Iterator[int]:
    """Under torchrun (WORLD_SIZE > 1) join the process group, one device per rank; yield this rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield 0
        return
    import torch

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and args.device in (None, "cuda")
    if use_cuda:
        torch.cuda.set_device(local)
        args.device = f"cuda:{local}"
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    from gpte.shared.distributed import shutdown

    completed = False
    try:
        yield rank
        completed = True
    finally:
        shutdown(completed=completed)


def _build(args: argparse.Namespace, out: Path, exists: bool, rank: int) -> int:
    from tqdm.auto import tqdm

    from gpte.index import Collection
    from gpte.index.sharded import add_sharded

    if exists and args.update:
        coll = Collection.open(out, model=args.model, **_device_option(args))
    else:  # a new index; with --overwrite it replaces the old one atomically when saved
        coll = Collection(_load_model(args), backend=args.backend, spec=args.spec, precision=args.precision,
                          metric=args.metric, store_text=not args.no_text)
    docs = _unique(_corpus(args.source, args.glob))
    batch: list[tuple[Any, str, dict[str, Any]]] = []
    added, flushes = 0, 0
    work = out.parent / f".{out.name}.shards"  # per-rank shards under torchrun
    bar = tqdm(unit="doc", desc="index", disable=args.quiet or rank != 0 or not sys.stderr.isatty())

    def flush() -> int:
        nonlocal flushes
        ids, texts, metas = zip(*batch, strict=True)
        done = add_sharded(coll, list(texts), list(ids), list(metas), work, tag=str(flushes), upsert=args.update,
                           on_error="skip", batch_size=args.batch_size, long_texts="chunk", show_progress=False)
        flushes += 1
        bar.update(len(batch))
        batch.clear()
        return done

    for item in docs:
        batch.append(item)
        if len(batch) >= 4096:
            added += flush()
    if batch:
        added += flush()
    bar.close()
    if rank != 0:  # rank 0 holds the merged index and saves it
        return 0
    shutil.rmtree(work, ignore_errors=True)
    if added == 0 and len(coll) == 0:
        raise UsageError(f"no documents found in {args.source}")
    coll.save(out)
    print(f"indexed {added} documents into {out} ({len(coll)} in total, {coll.index.spec}, "
          f"model {coll.model.identity()['name']})")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from gpte.index import Collection

    coll = Collection.open(args.index, model=args.model, mmap=args.mmap, **_device_option(args))
    flt = json.loads(args.filter) if args.filter else None
    results = coll.search(list(args.queries), k=args.k, filter=flt)
    if args.json:
        payload = [{"query": q, "hits": [{"id": h.id, "score": round(h.score, 6), "metadata": h.metadata}
                                         for h in hits]} for q, hits in zip(args.queries, results, strict=True)]
        print(json.dumps(payload if len(payload) > 1 else payload[0], indent=2, ensure_ascii=False))
        return 0
    for query, hits in zip(args.queries, results, strict=True):
        print(f"query: {query}")
        if not hits:
            print("  (no hits)")
        for rank, hit in enumerate(hits, 1):
            text = str((hit.metadata or {}).get("text", "")).strip().splitlines()
            snippet = (text[0] if text else "")[:90]
            print(f"  {rank:>2}. {hit.score:6.3f}  {hit.id}")
            if snippet:
                print(f"            {snippet}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import torch

    import gpte

    versions: dict[str, str] = {"gpte": gpte.__version__, "python": platform.python_version(),
                                "torch": torch.__version__}
    for mod in ("transformers", "faiss", "numpy", "sentence_transformers"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    try:
        import faiss

        faiss_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except ImportError:
        faiss_gpus = 0
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    models = [{"name": e.name, "modality": e.modality, "description": e.description, "source": e.source,
               "aliases": list(e.aliases)} for e in gpte.list_models(include_test=args.all)]
    info = {"versions": versions, "device": device, "faiss_gpus": faiss_gpus, "models": models}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"device:   {device}; faiss GPUs: {faiss_gpus}")
    print("models:")
    wn = max([len(m["name"]) for m in models] + [4])
    wm = max([len(m["modality"]) for m in models] + [4])
    for m in models:
        print(f"  {m['name']:<{wn}} {m['modality']:<{wm}} {m['description']}")
        print(f"  {'':<{wn}} {'':<{wm}} weights: {m['source']}")
    return 0


# ---------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpte", description="General-purpose embeddings: text, images and code.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(p: argparse.ArgumentParser, default: str | None = "minilm") -> None:
        p.add_argument("--model", default=default,
                       help=f"registered name or local folder (default: {default or 'the index model, else minilm'})")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
        p.add_argument("--batch-size", type=int, default=None, help="texts per batch (default: 256 on CPU)")

    p = sub.add_parser("embed", help="embed texts → .npy or JSONL")
    p.add_argument("texts", nargs="*", help="texts to embed; '-' or none reads stdin, one per line")
    p.add_argument("--file", help="a UTF-8 file with one text per line")
    p.add_argument("--output", "-o", help="out.npy or out.jsonl (default: JSONL on stdout)")
    p.add_argument("--prompt", choices=["query", "document", "none"], default="document",
                   help="which of the model's prompts to prepend (default: document)")
    p.add_argument("--truncate-dim", type=int, default=None, help="Matryoshka truncation")
    p.add_argument("--precision", default="float32", choices=["float32", "float16", "int8", "uint8", "binary",
                                                                "ubinary"])
    model_args(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("index", help="build vector indexes")
    isub = p.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")
    b = isub.add_parser("build", help="a folder of text files, a .jsonl corpus, a text file or python-stdlib → index")
    b.add_argument("source", help="folder, .jsonl file ({'id', 'text', ...metadata}), .txt file (one document per "
                                  "line), or 'python-stdlib'")
    b.add_argument("--out", "-o", required=True, help="index directory to write")
    b.add_argument("--backend", choices=["faiss", "exact"], default="faiss")
    b.add_argument("--spec", default="auto", help="faiss factory string, or auto (Flat below 50k, IVF above)")
    b.add_argument("--metric", choices=["cosine", "ip", "l2"], default="cosine")
    b.add_argument("--precision", choices=["float32", "float16", "int8", "binary"], default="float32")
    b.add_argument("--glob", default="**/*", help="files to take from a folder (default: text files, recursively)")
    b.add_argument("--no-text", action="store_true", help="do not keep document text in the index")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--update", action="store_true", help="add to (upsert into) an existing index")
    g.add_argument("--overwrite", action="store_true", help="replace an existing index")
    model_args(b, default=None)
    b.set_defaults(func=cmd_index_build)

    p = sub.add_parser("search", help="query an index")
    p.add_argument("index", help="index directory")
    p.add_argument("queries", nargs="+", help="one or more queries")
    p.add_argument("-k", type=int, default=10, help="hits per query")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"module": {"$in": ["json", "csv"]}}\'')
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--mmap", action="store_true", help="memory-map the index instead of reading it")
    model_args(p, default=None)
    p.set_defaults(func=cmd_search)

    from gpte.commands.code import add_parsers as add_code_parsers
    from gpte.commands.demo import add_parsers as add_demo_parsers
    from gpte.commands.ide import add_parsers as add_ide_parsers
    from gpte.commands.images import add_parsers as add_images_parsers
    from gpte.commands.training import add_parsers as add_training_parsers

    add_training_parsers(sub)
    add_code_parsers(sub)
    add_images_parsers(sub)
    add_demo_parsers(sub)
    add_ide_parsers(sub)

    p = sub.add_parser("info", help="versions, device and registered models")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="include tiny test models")
    p.set_defaults(func=cmd_info)
    return parser


def _configure_logging(level: int) -> None:
    """Send gpte's log records to the current stderr; replaces the handler of an earlier main() in this process."""
    log = logging.getLogger("gpte")
    for handler in [h for h in log.handlers if getattr(h, "_gpte_cli", False)]:
        log.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gpte: %(levelname)s: %(message)s"))
    handler._gpte_cli = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else logging.INFO if args.verbose else logging.WARNING
    _configure_logging(level)
    from gpte.index.errors import IndexConflictError, IndexCorruptError, IndexReadOnlyError
    from gpte.shared.errors import GpteError
    from gpte.shared.fsio import LockedError

    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"gpte: error: {exc}", file=sys.stderr)
        return 2
    except (GpteError, ValueError, TypeError, FileNotFoundError, NotImplementedError, LockedError,
            IndexCorruptError, IndexReadOnlyError, IndexConflictError, FloatingPointError, OSError) as exc:
        print(f"gpte: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gpte: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
