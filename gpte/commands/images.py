"""``gpte images index DIR`` and ``gpte images search DIR "a red car"``: thin layers over
:class:`gpte.multimodal.ImageSearch`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]


def _engine(args: argparse.Namespace) -> Any:
    import gpte
    from gpte.multimodal.search import DEFAULT_IMAGE_MODEL, ImageSearch

    model: Any = DEFAULT_IMAGE_MODEL
    if args.model is not None:
        model = gpte.load(args.model, **({"device": args.device} if args.device else {}))
    return ImageSearch(args.folder, model=model, batch_size=args.batch_size, index_dir=args.index_dir,
                       follow_symlinks=args.follow_symlinks)


def cmd_images_index(args: argparse.Namespace) -> int:
    engine = _engine(args)
    r = engine.index()
    print(f"{engine.folder}: {r.images_indexed} images indexed ({r.images_per_second:.1f}/s), {r.images_unchanged} "
          f"unchanged, {r.images_removed} removed, {len(r.duplicates)} duplicates, {len(r.skipped)} skipped; "
          f"{r.seconds:.1f} s")
    if args.verbose_skips:
        for path, why in sorted(r.skipped.items()):
            print(f"  skipped {path}: {why}")
        for path, twin in sorted(r.duplicates.items()):
            print(f"  duplicate {path}: same bytes as {twin}")
    return 0


def cmd_images_search(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if not args.no_update:
        engine.index()
    if args.query is None and args.image is None:
        raise SystemExit("gpte images search: give a text query, --image PATH, or both")
    if args.image is not None:
        image = Path(args.image)
        query: Any = (image, args.query) if args.query else image
    else:
        query = args.query
    hits = engine.search(query, k=args.k)
    if args.json:
        print(json.dumps([{"id": h.id, "path": h.path, "score": round(h.score, 6), "metadata": h.metadata}
                          for h in hits], indent=2))
        return 0
    if not hits:
        print("(no hits)")
    for rank, h in enumerate(hits, 1):
        dup = f"  (+{len(h.metadata['duplicates'])} duplicates)" if h.metadata.get("duplicates") else ""
        print(f"{rank:>2}. {h.score:6.3f}  {h.path or h.id}{dup}")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``gpte images ...`` on ``sub``."""
    p = sub.add_parser("images", help="image–text search over a folder of images")
    isub = p.add_subparsers(dest="images_command", required=True, metavar="SUBCOMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("folder", help="image folder; the index lives in FOLDER/.gpte/image-index")
        q.add_argument("--model", default=None, help="image–text model name or folder (default: lit-lite0-minilm, "
                                                     "or the index's)")
        q.add_argument("--device", default=None)
        q.add_argument("--batch-size", type=int, default=32)
        q.add_argument("--index-dir", default=None, help="keep the index here instead of FOLDER/.gpte/image-index "
                                                         "(for folders you cannot or should not write to)")
        q.add_argument("--follow-symlinks", action="store_true",
                       help="also index symbolic links to images outside FOLDER (skipped by default)")

    q = isub.add_parser("index", help="index (or update) the folder: only new and changed images are embedded")
    common(q)
    q.add_argument("--verbose-skips", action="store_true", help="list every skipped file and duplicate")
    q.set_defaults(func=cmd_images_index)

    q = isub.add_parser("search", help="search the folder by text, by an image, or by both (updating the index first)")
    common(q)
    q.add_argument("query", nargs="?", default=None, help="what to find, in words")
    q.add_argument("--image", default=None, help="query image (with a text query too: image plus text)")
    q.add_argument("-k", type=int, default=10)
    q.add_argument("--json", action="store_true")
    q.add_argument("--no-update", action="store_true", help="search the index as it is")
    q.set_defaults(func=cmd_images_search)
