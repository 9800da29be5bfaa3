"""``faceops enroll``, ``faceops identify``, ``faceops attendance``: a gallery of known people.

    faceops enroll NAME IMG... --gallery G.npz        # add the largest face of each IMG as NAME
    faceops identify IMG --gallery G.npz [--top-k 3] [--json]
    faceops attendance CLASS_PHOTO --gallery G.npz [--json]

The gallery file (``faceops.gallery.Gallery``) is created by the first
``enroll`` and remembers its recognition model; using it with a pack that
recognises with another model is refused. ``identify`` lists, for every face
of IMG, the ``--top-k`` most similar people with their similarity and whether
it reaches the threshold; ``attendance`` says who of the gallery is in the
photo, who is absent, and how many faces are unknown.

With ``--json``: ``identify`` prints ``{"path", "faces": [{"bbox", "matches":
[{"name", "similarity", "same"}]}]}``; ``attendance`` prints ``{"present":
[{"name", "similarity", "bbox"}], "absent": [...], "unknown_faces":
[{"bbox"}]}``.

Exit code 0 on success (also when nobody is recognised); 1 when a photo or
the gallery cannot be read, an enrolment photo has no face, or the models
cannot be loaded; 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from faceops.cli.analyze import add_model_arguments, build_app
from faceops.cli.compare import RECOGNITION_MODULES
from faceops.errors import FaceopsError
from faceops.image_io import read_image


def _box(face) -> list[float]:
    return np.round(np.asarray(face.bbox, dtype=float), 1).tolist()


def _app_and_model(args):
    app = build_app(args, allowed_modules=RECOGNITION_MODULES)
    return app, app.models["recognition"].model


def run_enroll(args: argparse.Namespace) -> int:
    from faceops.gallery import Gallery

    try:
        app, model = _app_and_model(args)
        path = Path(args.gallery)
        gallery = Gallery.load(path, model=model) if path.exists() else Gallery(model)
        for image in args.images:
            face = gallery.enroll_photo(args.name, read_image(image, downscale_huge=args.downscale_huge), app)
            print(f"enrolled {args.name} from {image} (face at {_box(face)})")
        saved = gallery.save(path)
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{saved}: {len(gallery)} people, {len(gallery.names)} embeddings ({gallery.model})")
    return 0


def run_identify(args: argparse.Namespace) -> int:
    from faceops.gallery import Gallery

    try:
        app, model = _app_and_model(args)
        gallery = Gallery.load(args.gallery, model=model)
        faces = app.get(read_image(args.image, downscale_huge=args.downscale_huge))
        results = [(face, gallery.search(face, top_k=args.top_k)) for face in faces]
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"path": args.image, "threshold": gallery.threshold, "model": gallery.model,
                          "faces": [{"bbox": _box(f), "matches": [m.to_dict() for m in matches]}
                                    for f, matches in results]}))
        return 0
    print(f"{args.image}: {len(faces)} face{'s' if len(faces) != 1 else ''} "
          f"(threshold {gallery.threshold:g}, {gallery.model})")
    for index, (face, matches) in enumerate(results):
        best = matches[0] if matches and matches[0].same else None
        print(f"  face {index} at {_box(face)}: {best.name if best else 'unknown'}")
        for match in matches:
            print(f"    {match.name:20s} {match.similarity:.4f}{'  (match)' if match.same else ''}")
    return 0


def run_attendance(args: argparse.Namespace) -> int:
    from faceops.gallery import Gallery, attendance

    try:
        app, model = _app_and_model(args)
        gallery = Gallery.load(args.gallery, model=model)
        present, absent, unknown = attendance(gallery, read_image(args.photo, downscale_huge=args.downscale_huge), app)
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({
            "path": args.photo,
            "present": [{"name": n, "similarity": round(s, 4), "bbox": _box(f)} for n, (s, f) in present.items()],
            "absent": absent,
            "unknown_faces": [{"bbox": _box(f)} for f in unknown],
        }))
        return 0
    print(f"present ({len(present)}/{len(gallery)}):")
    for name, (score, face) in present.items():
        print(f"  {name:20s} {score:.4f}  at {_box(face)}")
    print(f"absent ({len(absent)}): {', '.join(absent) if absent else '-'}")
    print(f"unknown faces: {len(unknown)}")
    return 0


def _gallery_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gallery", required=True, metavar="G.npz", help="gallery file")


def register(subparsers) -> None:
    enroll = subparsers.add_parser("enroll", help="add a person's photos to a gallery file",
                                   description="Enroll the largest face of each photo as NAME (several photos "
                                   "per person are fine). Creates the gallery file if needed.")
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("images", nargs="+", metavar="IMG")
    _gallery_argument(enroll)
    add_model_arguments(enroll)
    enroll.set_defaults(func=run_enroll)

    identify = subparsers.add_parser("identify", help="who are the faces in a photo (top-k from a gallery)",
                                     description="For every face of IMG, the most similar people of the gallery.")
    identify.add_argument("image", metavar="IMG")
    _gallery_argument(identify)
    identify.add_argument("--top-k", type=int, default=3, metavar="K", help="candidates per face (default: 3)")
    identify.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_arguments(identify)
    identify.set_defaults(func=run_identify)

    attend = subparsers.add_parser("attendance", help="who of a gallery is in a group photo",
                                   description="Present, absent and unknown faces of a class photo.")
    attend.add_argument("photo", metavar="CLASS_PHOTO")
    _gallery_argument(attend)
    attend.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_arguments(attend)
    attend.set_defaults(func=run_attendance)
