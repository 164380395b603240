"""`python -m analytics.athena_api [--port N] [--host H] [--advertise URL]`: serve the endpoint until SIGTERM.

Settings come from the environment as for every command (TARGET, PORT, STATE_DIR, ...); the port
defaults to the emulator's + 41 (4607 beside 4566), the host to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
import sys

from analytics.athena_api import athena_port
from analytics.athena_api.server import serve
from common.config import load_settings
from common.errors import PipelineError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics.athena_api", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: PORT + 41)")
    parser.add_argument("--host", default=None, help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--advertise", default=None,
                        help="the URL the emulator forwards Athena requests to (default: this endpoint's own; "
                             "compose: http://athena:4607)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    try:
        settings = load_settings()
        if not settings.emulated:
            raise PipelineError("TARGET=aws uses AWS's own Athena; run the endpoint on embedded or compose")
        serve(settings, args.port or athena_port(settings), args.host, args.advertise)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
