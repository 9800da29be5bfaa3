"""``faceops reconstruct``: a 3D mesh for every face in a photo, by fitting the Basel Face Model.

    faceops reconstruct IMG -o face.obj [--render out.png] [--side side.png]
                        [--landmarks 106|3ddfa|5] [--lambda 10] [--iterations 5] [--tddfa]

Detects the faces (``--pack``'s detector), finds landmarks (``--landmarks``:
2d106det through the derived 106->68 table by default, 3DDFA_V2's 68, or the
detector's 5 key points), fits the morphable model by least squares
(``faceops.morphable.fitting``) and writes, per face, an OBJ or PLY mesh
(by the suffix of ``-o``) coloured from the photo. With several faces the
files are numbered: ``face_0.obj``, ``face_1.obj``... ``--render`` draws
every fitted mesh, shaded, over the photo; ``--side`` saves a side view of
each face next to a frontal one. ``--tddfa`` uses 3DDFA_V2's regressed mesh
instead of the fit (its own answer, for comparison).

The BFM and 3DDFA_V2 are for non-commercial research only.

Exit code: 0 when at least one face was reconstructed, 1 when none was
(or an error occurred), 2 for usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from faceops.cli.analyze import add_model_arguments, build_app, write_image
from faceops.errors import FaceopsError
from faceops.image_io import read_image
from faceops.morphable.fitting import DEFAULT_ITERATIONS, DEFAULT_SHAPE_LAMBDA


def numbered(path: Path, index: int, count: int) -> Path:
    """``path`` itself for a single face, else ``stem_<index>suffix``."""
    return path if count == 1 else path.with_name(f"{path.stem}_{index}{path.suffix}")


def run_reconstruct(args: argparse.Namespace) -> int:
    from faceops.morphable import load_bfm
    from faceops.morphable.export import sample_vertex_colours, write_mesh
    from faceops.morphable.pipeline import fit_faces
    from faceops.morphable.render import render_overlay, render_view
    from faceops.morphable.tddfa import TDDFA

    try:
        modules = ["detection", "landmark_2d_106"] if args.landmarks == "106" else ["detection"]
        app = build_app(args, allowed_modules=modules)
        img = read_image(args.image, downscale_huge=args.downscale_huge)
        faces = app.get(img, max_num=args.max_num)
        if not faces:
            print(f"{args.image}: no face found", file=sys.stderr)
            return 1
        model = load_bfm()
        tddfa = TDDFA(backend=args.backend, model=model) if (args.tddfa or args.landmarks == "3ddfa") else None
        if args.tddfa:
            predictions = [tddfa.predict(img, face.bbox) for face in faces]
            shapes = [model.vertices(p.shape_coeffs, p.expression_coeffs) for p in predictions]
            in_image = [p.image_vertices() for p in predictions]
            rotations = [p.rotation for p in predictions]
            poses = [p.pose for p in predictions]
            errors = [None] * len(faces)
        else:
            fits = fit_faces(img, faces, source=args.landmarks, model=model, tddfa=tddfa,
                             n_iterations=args.iterations, shape_lambda=args.lam, expression_lambda=args.lam)
            shapes = [fit.vertices for fit in fits]
            in_image = [fit.image_vertices() for fit in fits]
            rotations = [fit.rotation for fit in fits]
            poses = [fit.pose for fit in fits]
            errors = [fit.rms_error for fit in fits]
    except (FaceopsError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    side_views = []
    per_face = zip(faces, shapes, in_image, rotations, poses, errors)
    for i, (face, shape, verts, rotation, pose, err) in enumerate(per_face):
        colours = sample_vertex_colours(img, verts, model.triangles)
        target = write_mesh(numbered(output, i, len(faces)), shape, model.triangles, colours)
        fit_note = "" if err is None else f", landmark rms {err:.1f} px"
        print(f"face {i} at {np.round(face.bbox).astype(int).tolist()}: pitch {pose[0]:.1f} yaw {pose[1]:.1f} "
              f"roll {pose[2]:.1f}{fit_note} -> {target}")
        if args.side:
            side_views.append(np.hstack([render_view(shape, model.triangles, rotation, yaw=0.0, size=args.view_size),
                                         render_view(shape, model.triangles, rotation, yaw=90.0, size=args.view_size)]))
    try:
        if args.render:
            render_path = Path(args.render)
            render_path.parent.mkdir(parents=True, exist_ok=True)
            write_image(render_path, render_overlay(img, [(v, model.triangles) for v in in_image]))
            print(f"overlay -> {render_path}")
        if args.side:
            side_path = Path(args.side)
            side_path.parent.mkdir(parents=True, exist_ok=True)
            write_image(side_path, np.vstack(side_views))
            print(f"front and side views -> {side_path}")
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconstruct",
        help="fit a 3D face model to every face in a photo; write OBJ/PLY meshes and renders",
        description="Detect faces, find landmarks, fit the Basel Face Model (least squares) and save a coloured "
        "mesh per face. BFM and 3DDFA_V2 are for non-commercial research only. Exit code 0: at least one face; "
        "1: no face or an error; 2: usage.",
    )
    parser.add_argument("image", metavar="IMG", help="photo to reconstruct")
    parser.add_argument("-o", "--output", required=True, metavar="MESH",
                        help="mesh file, .obj or .ply (numbered face_0.obj, face_1.obj... for several faces)")
    parser.add_argument("--render", metavar="PNG", help="also draw the shaded meshes over the photo into this file")
    parser.add_argument("--side", metavar="PNG", help="also save a frontal and a side view of each face")
    parser.add_argument("--view-size", type=int, default=256, metavar="N", help="size of each view (default: 256)")
    parser.add_argument("--landmarks", choices=("106", "3ddfa", "5"), default="106",
                        help="landmarks to fit: 2d106det via the 106->68 table (default), 3DDFA_V2's 68, "
                        "or the detector's 5 key points")
    parser.add_argument("--lambda", dest="lam", type=float, default=DEFAULT_SHAPE_LAMBDA, metavar="L",
                        help="regularisation weight (mm^2) for identity and expression "
                        f"(default: {DEFAULT_SHAPE_LAMBDA:g})")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"pose/expression/identity rounds (default: {DEFAULT_ITERATIONS})")
    parser.add_argument("--tddfa", action="store_true",
                        help="output 3DDFA_V2's regressed mesh instead of the least-squares fit")
    add_model_arguments(parser)
    parser.set_defaults(func=run_reconstruct)
