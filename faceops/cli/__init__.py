"""The ``faceops`` command line.

Each subcommand lives in a module of this package that defines
``register(subparsers)``: it adds its parser and sets ``func`` (called with
the parsed arguments, returning the exit code). ``main`` only wires them up.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# One module per subcommand family, in the order `faceops --help` lists them.
SUBCOMMAND_MODULES = [
    "weights",
    "analyze",
    "blur",
    "compare",
    "gallery",
    "cluster",
    "reconstruct",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceops",
        description="Face detection, alignment, recognition, attributes and 3D fitting on minicnn.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)  # default INFO, -v DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from minicnn.errors import MiniCNNError

    from ..errors import FaceopsError

    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # `faceops analyze --json | head`: the reader left; stop quietly instead of a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FaceopsError, MiniCNNError) as exc:
        print(f"faceops: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
