"""``gpte ide serve`` (the language server) and ``gpte ide http`` (the JSON-over-HTTP front): thin layers over
:class:`gpte.ide.WorkspaceService`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = ["add_parsers"]

logger = logging.getLogger(__name__)


def _service_options(args: argparse.Namespace) -> dict[str, Any]:
    from gpte.code.search import DEFAULT_CODE_MODEL

    return {"model": args.model or DEFAULT_CODE_MODEL, "device": args.device, "watch": not args.no_watch,
            "poll_interval": args.poll_interval}


def cmd_ide_serve(args: argparse.Namespace) -> int:
    try:
        from gpte.ide.lsp import serve
    except ImportError as exc:
        print(f"gpte: error: {exc}", file=sys.stderr)
        return 1
    if args.tcp and args.stdio:
        raise ValueError("choose one of --stdio and --tcp")
    serve(stdio=not args.tcp, host=args.host, port=args.port, **_service_options(args))
    return 0


def cmd_ide_http(args: argparse.Namespace) -> int:
    from gpte.ide.http import make_http_server
    from gpte.ide.service import WorkspaceService

    service = WorkspaceService(args.root, **_service_options(args),
                               on_message=lambda level, text: print(text, file=sys.stderr, flush=True))
    httpd = make_http_server(service, args.host, args.port)
    host, port = httpd.server_address[:2]
    service.start()
    print(f"gpte ide http: serving {service.root} on http://{host}:{port}/ (GET /health, POST /search, "
          "POST /reindex)", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        service.close()
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``gpte ide ...`` on ``sub``."""
    p = sub.add_parser("ide", help="code search for editors: a language server and a JSON-over-HTTP front")
    isub = p.add_subparsers(dest="ide_command", required=True, metavar="SUBCOMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--model", default=None, help="embedder name or folder (default: the index's, else code-minilm)")
        q.add_argument("--device", default=None)
        q.add_argument("--no-watch", action="store_true", help="do not poll the workspace for outside changes")
        q.add_argument("--poll-interval", type=float, default=2.0, help="seconds between two polls (default 2)")
        q.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")

    q = isub.add_parser("serve", help="the language server: workspace/symbol by meaning, the gpte.search command")
    mode = q.add_mutually_exclusive_group()
    mode.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default; what editors use)")
    mode.add_argument("--tcp", action="store_true", help="listen on --host:--port instead")
    q.add_argument("--port", type=int, default=2087)
    common(q)
    q.set_defaults(func=cmd_ide_serve)

    q = isub.add_parser("http", help="JSON over HTTP: GET /health, POST /search, POST /reindex")
    q.add_argument("--root", required=True, help="the workspace folder")
    q.add_argument("--port", type=int, default=8765, help="port (0: any free one, printed at start)")
    common(q)
    q.set_defaults(func=cmd_ide_http)
