"""``faceops cluster DIR``: group the photos of a folder by the people in them.

    faceops cluster DIR... [--json] [--copy-to OUT] [--recursive] [--min-samples 1] [--eps E]

Every face of every photo is detected and embedded (the pack's recognition
model), then grouped by DBSCAN on cosine distance with ``eps = 1 -
threshold`` (``faceops.cluster``). The report lists each person (``person_1``
has the most faces) with the photos and boxes of their faces, and the
photos where no face was found. ``--json`` prints it as one JSON object.
``--copy-to OUT`` copies each photo into ``OUT/person_N/`` for every person
in it (a group photo lands in several folders) and photos without faces
into ``OUT/no_face/``. A progress bar runs on stderr.

Exit code 0 when every photo was read; 1 when some could not be (they are
listed, the rest is still grouped) or the models cannot be loaded; 2 for a
wrong command line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from faceops.cli.analyze import add_model_arguments, build_app
from faceops.cli.compare import RECOGNITION_MODULES
from faceops.errors import FaceopsError
from faceops.image_io import list_images


def copy_into_folders(report, out: Path) -> None:
    """Copy every photo into ``out/<person>/`` for each person in it, photos without faces into ``out/no_face``."""
    for person, records in report.groups().items():
        folder = out / person
        folder.mkdir(parents=True, exist_ok=True)
        for path in dict.fromkeys(r.path for r in records):
            shutil.copy2(path, folder / path.name)
    if report.photos_without_faces:
        folder = out / "no_face"
        folder.mkdir(parents=True, exist_ok=True)
        for path in report.photos_without_faces:
            shutil.copy2(path, folder / path.name)


def run_cluster(args: argparse.Namespace) -> int:
    from faceops.cluster import cluster_photos

    paths = list_images(args.inputs, recursive=args.recursive)
    if not paths:
        print(f"faceops cluster: no images found in {', '.join(args.inputs)}", file=sys.stderr)
        return 1
    try:
        app = build_app(args, allowed_modules=RECOGNITION_MODULES)
        report = cluster_photos(paths, app, eps=args.eps, min_samples=args.min_samples, progress=True)
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.copy_to:
        copy_into_folders(report, Path(args.copy_to))
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        groups = report.groups()
        people = [g for g in groups if g != "unassigned"]
        print(f"{len(report.faces)} faces in {len(paths)} photos: {len(people)} people "
              f"({report.model}, eps {report.eps:.3f})")
        for name, records in groups.items():
            photos = list(dict.fromkeys(str(r.path) for r in records))
            print(f"  {name}: {len(records)} face{'s' if len(records) != 1 else ''} in {len(photos)} "
                  f"photo{'s' if len(photos) != 1 else ''}: {', '.join(photos)}")
        if report.photos_without_faces:
            print(f"  no face: {', '.join(str(p) for p in report.photos_without_faces)}")
        if args.copy_to:
            print(f"copied into {args.copy_to}/")
    for path, reason in report.unreadable.items():
        print(f"error: {reason}", file=sys.stderr)
    return 1 if report.unreadable else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="group photos by person (DBSCAN on face embeddings)",
        description="Group the faces of the photos in DIR by person. Exit code 0: every photo read; "
        "1: some photo unreadable or models not loadable; 2: usage.",
    )
    parser.add_argument("inputs", nargs="+", metavar="DIR", help="folders (or image files) to group")
    parser.add_argument("--recursive", action="store_true", help="look into subfolders")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--copy-to", metavar="OUT", help="copy photos into OUT/person_N/ folders")
    parser.add_argument("--min-samples", type=int, default=1, metavar="M",
                        help="faces a person needs to form a group (default 1: everyone seen once is a group)")
    parser.add_argument("--eps", type=float, default=None, metavar="E",
                        help="neighbour distance (1 - cosine similarity); default: 1 - the model's threshold")
    add_model_arguments(parser)
    parser.set_defaults(func=run_cluster)
