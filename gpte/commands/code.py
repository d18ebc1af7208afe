"""``gpte code index PATH`` and ``gpte code search PATH "query"``: thin layers over :class:`gpte.code.CodeSearch`."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parsers"]


def _search_engine(args: argparse.Namespace) -> Any:
    import gpte
    from gpte.code import CodeSearch

    model = args.model
    if model is not None:
        model = gpte.load(model, **({"device": args.device} if args.device else {}))
    from gpte.code.search import DEFAULT_CODE_MODEL

    return CodeSearch(args.path, model=model if model is not None else DEFAULT_CODE_MODEL)


def cmd_code_index(args: argparse.Namespace) -> int:
    engine = _search_engine(args)
    report = engine.index()
    print(f"{engine.root}: {report.files_indexed} files indexed, {report.files_unchanged} unchanged, "
          f"{report.files_removed} removed; {report.chunks_added} chunks added, {report.chunks_removed} removed; "
          f"{len(report.skipped)} skipped; {report.seconds:.1f} s")
    if args.verbose_skips:
        for path, why in sorted(report.skipped.items()):
            print(f"  skipped {path}: {why}")
    return 0


def cmd_code_search(args: argparse.Namespace) -> int:
    engine = _search_engine(args)
    if not args.no_update:
        engine.index()
    hits = engine.search(args.query, k=args.k, language=args.language, path_glob=args.path_glob)
    if args.json:
        print(json.dumps([{"path": h.path, "symbol": h.qualname or h.symbol, "kind": h.kind, "language": h.language,
                           "start_line": h.start_line, "end_line": h.end_line, "score": round(h.score, 6),
                           "snippet": h.snippet} for h in hits], indent=2))
        return 0
    if not hits:
        print("(no hits)")
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>2}. {h.score:6.3f}  {h.path}:{h.start_line}-{h.end_line}  {h.kind} {h.qualname or h.symbol}")
        first = next((line.strip() for line in h.snippet.splitlines() if line.strip()), "")
        if first:
            print(f"            {first[:100]}")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``gpte code ...`` on ``sub``."""
    p = sub.add_parser("code", help="natural-language code search over a folder (tree-sitter chunks)")
    csub = p.add_subparsers(dest="code_command", required=True, metavar="SUBCOMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("path", help="workspace folder; the index lives in PATH/.gpte/code-index")
        q.add_argument("--model", default=None, help="embedder name or folder (default: code-minilm, or the index's)")
        q.add_argument("--device", default=None)

    q = csub.add_parser("index", help="index (or update) the workspace: only changed files are re-embedded")
    common(q)
    q.add_argument("--verbose-skips", action="store_true", help="list every skipped file and why")
    q.set_defaults(func=cmd_code_index)

    q = csub.add_parser("search", help="search the workspace (updating the index first)")
    common(q)
    q.add_argument("query", help="what the code does, in words (or a code fragment)")
    q.add_argument("-k", type=int, default=10)
    q.add_argument("--language", default=None, help="python, javascript, typescript, java, go, rust, c, cpp ...")
    q.add_argument("--path-glob", default=None, help="only paths matching this glob, e.g. 'src/*'")
    q.add_argument("--json", action="store_true")
    q.add_argument("--no-update", action="store_true", help="search the index as it is")
    q.set_defaults(func=cmd_code_search)
