"""Shared command-line plumbing: one clear sentence and a non-zero exit for user errors.

Every console script (``realtime``, ``training``, ``engines``) runs its handler through
:func:`run_cli`. Errors a user can cause (a bad file, a missing camera, a port in use) are raised
by library code as specific exceptions, most of them ``ValueError`` or ``OSError`` subclasses with
a message that names the file and the problem; here they become ``error: <message>`` on stderr
and exit status 2. Set ``POSESTREAM_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["run_cli", "EXIT_USER_ERROR", "coming_soon"]

EXIT_USER_ERROR = 2


def coming_soon(feature: str) -> Callable[[argparse.Namespace], int]:
    """Handler for a subcommand whose feature is not implemented yet: one sentence, exit status 2.

    Register it with ``set_defaults(handler=coming_soon(...), ignore_extra=True)`` so that the
    future command line (``realtime run --camera 0``) reaches the message instead of a usage error.
    """

    def handler(_: argparse.Namespace) -> int:
        print(f"not available yet: {feature}", file=sys.stderr)
        return EXIT_USER_ERROR

    return handler


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, dispatch to ``args.handler`` and turn user errors into one line."""
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "ignore_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError) as exc:
        if os.environ.get("POSESTREAM_DEBUG"):
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {exc.strerror or message}"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
