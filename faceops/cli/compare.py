"""``faceops compare A B``: are the faces in two photos the same person?

    faceops compare A.jpg B.jpg [--json] [--threshold T] [--pack buffalo_s|open] [--backend ...]

Each photo's largest face is detected, aligned and embedded with the pack's
recognition model (buffalo_s: w600k_mbf; open: SFace); the output is their
cosine similarity and the verdict against the model's documented threshold
(docs/recognition.md), or ``--threshold``. With ``--json``: one object
``{"a", "b", "similarity", "same", "threshold", "model"}``.

Exit code 0 when both photos were compared (whatever the verdict); 1 when a
photo cannot be read, holds no face, or the models cannot be loaded; 2 for a
wrong command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from faceops.cli.analyze import add_model_arguments, build_app
from faceops.errors import FaceopsError, NoFaceError
from faceops.image_io import read_image

RECOGNITION_MODULES = ["detection", "recognition"]


def embed_largest_face(app, path: Path, downscale_huge: bool = False):
    """The largest face of the photo at ``path``, embedded; ``NoFaceError`` naming the file if none."""
    from faceops.gallery import largest_face

    faces = app.get(read_image(path, downscale_huge=downscale_huge))
    if not faces:
        raise NoFaceError(f"{path}: no face found")
    return largest_face(faces)


def run_compare(args: argparse.Namespace) -> int:
    from faceops.recognition import compare

    try:
        app = build_app(args, allowed_modules=RECOGNITION_MODULES)
        face_a = embed_largest_face(app, Path(args.a), args.downscale_huge)
        face_b = embed_largest_face(app, Path(args.b), args.downscale_huge)
        result = compare(face_a, face_b, threshold=args.threshold)
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, **result.to_dict()}))
    else:
        verdict = "same person" if result.same else "different people"
        print(f"similarity {result.similarity:.4f}: {verdict} "
              f"(threshold {result.threshold:g}, {result.model})")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="cosine similarity of the largest faces of two photos, and same/different",
        description="Compare the largest face of photo A with the largest face of photo B. Exit code 0: compared "
        "(same or not); 1: unreadable photo, no face, or models not loadable; 2: usage.",
    )
    parser.add_argument("a", metavar="A", help="first photo")
    parser.add_argument("b", metavar="B", help="second photo")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="same-person threshold on cosine similarity (default: the model's documented one)")
    add_model_arguments(parser)
    parser.set_defaults(func=run_compare)
