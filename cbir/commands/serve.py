"""`cbir serve`: the search page and JSON API under waitress (Flask's debug server with --debug)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from cbir.core.config import Settings

NAME = "serve"
HELP = "serve the search page and the JSON API (waitress, http://127.0.0.1:5000/ by default)"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=5000, help="port (default 5000; 0 picks a free one)"
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="worker threads answering requests (default 8)"
    )
    parser.add_argument(
        "--max-upload-mb",
        dest="max_upload_mb",
        type=float,
        help="largest accepted upload in MB (CBIR_MAX_UPLOAD_MB, default 10)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="Flask's development server with reloading, for working on the page (never in production)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app import create_app, serve
    from cbir.core.errors import CbirError

    if not 0 <= args.port <= 65535:
        raise CbirError(f"--port must be from 0 to 65535, got {args.port}")
    if args.threads < 1:
        raise CbirError(f"--threads must be at least 1, got {args.threads}")
    config = {"CBIR_SETTINGS": settings}
    if args.max_upload_mb is not None:
        config["CBIR_MAX_UPLOAD_MB"] = args.max_upload_mb
    app = create_app(config)
    if not is_loopback(args.host):
        print(
            f"cbir serve: warning: listening on {args.host}: the page has no login, so anyone who "
            "can reach it can search and see the indexed images",
            file=sys.stderr,
        )
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True, threaded=True)
        return 0

    def announce(url: str) -> None:
        print(f"cbir serve: {url} (waitress, {args.threads} threads; Ctrl-C stops)", flush=True)

    try:
        serve(app, host=args.host, port=args.port, threads=args.threads, announce=announce)
    except KeyboardInterrupt:
        print("cbir serve: stopped", file=sys.stderr)
    return 0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
