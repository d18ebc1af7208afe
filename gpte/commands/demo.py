"""``gpte demo``: the Gradio demo (image, code and text search in a browser) over the folders you name.

    gpte demo --images /usr/share/openclipart/png/transportation --follow-symlinks --code path/to/repo

A thin layer over :mod:`gpte.demo`: the options become a :class:`gpte.demo.DemoConfig`, then the page is served on
127.0.0.1 until interrupted.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "default_code_folders", "default_image_folders"]

logger = logging.getLogger("gpte.cli")

SAMPLE_IMAGES = Path("/usr/share/openclipart/png/transportation")  # Debian's openclipart-png, public domain


def default_image_folders() -> list[Path]:
    """Debian's clip art transportation folder when ``openclipart-png`` is installed; otherwise none."""
    return [SAMPLE_IMAGES] if SAMPLE_IMAGES.is_dir() else []


def default_code_folders() -> list[Path]:
    """gpte's own source folder: a workspace that is always there to search."""
    import gpte

    return [Path(gpte.__file__).resolve().parent]


def cmd_demo(args: argparse.Namespace) -> int:
    from gpte.demo import DemoConfig
    from gpte.demo.config import check_folder

    images = [Path(p) for p in args.images] if args.images else default_image_folders()
    code = [Path(p) for p in args.code] if args.code else default_code_folders()
    for given in (*images, *code):
        check_folder(given.expanduser().resolve(), str(given))
    if not args.images:
        logger.warning("no --images given: searching %s", images[0] if images else "no image folder "
                       "(install Debian's openclipart-png or pass --images FOLDER)")
    if not args.code:
        logger.warning("no --code given: searching gpte's own source, %s", code[0])
    if args.max_file_size <= 0:
        raise ValueError(f"--max-file-size must be positive, not {args.max_file_size}")
    config = DemoConfig(image_folders=images, code_folders=code, image_model=args.image_model,
                        code_model=args.code_model, text_model=args.text_model,
                        include_test_models=args.test_models, device=args.device,
                        follow_symlinks=args.follow_symlinks, max_upload_bytes=int(args.max_file_size * 1e6),
                        **({"cache_dir": args.cache_dir} if args.cache_dir else {}))
    from gpte.demo.app import build_app, launch

    launch(build_app(config), host=args.host, port=args.port, quiet=args.quiet)
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``gpte demo`` on ``sub``."""
    p = sub.add_parser("demo", help="the Gradio demo: image, code and text search in a browser (127.0.0.1)")
    p.add_argument("--images", action="append", metavar="FOLDER",
                   help="an image folder to search (repeatable; default: /usr/share/openclipart/png/transportation "
                        "when installed); the page may read only these folders and folders inside them")
    p.add_argument("--code", action="append", metavar="FOLDER",
                   help="a code workspace to search (repeatable; default: gpte's own source)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--image-model", default="lit-lite0-minilm", help="default image–text model")
    p.add_argument("--code-model", default="code-minilm", help="default code model")
    p.add_argument("--text-model", default="minilm", help="default text model")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--cache-dir", default=None, help="where indexes are kept (default ~/.cache/gpte/demo)")
    p.add_argument("--max-file-size", type=float, default=20.0, metavar="MB",
                   help="largest upload in megabytes (default 20)")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="also index symbolic links to images outside the named folders (Debian's clip art needs it)")
    p.add_argument("--test-models", action="store_true", help="also offer the tiny random test models")
    p.set_defaults(func=cmd_demo)
