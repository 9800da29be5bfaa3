"""``faceops analyze``: run the face pipeline on photos, folders or videos.

    faceops analyze IMG_OR_DIR_OR_VIDEO... [--json] [--draw OUT] [--pack P]
                    [--backend minicnn|onnxruntime] [--det-size 640] [--example]
    faceops analyze --example --draw t1_faces.jpg       # the bundled group photo t1

Output: a summary per image on stdout (one line per face); with ``--json``,
JSON Lines instead: one object per image, ``{"path", "width", "height",
"faces": [Face.to_dict(), ...]}`` (``"faces": []`` when none was found),
``{"path", "error"}`` for an input that failed; for a video one object per
frame with ``"frame"`` added. Warnings, errors and progress go to stderr.

``--draw OUT``: for one image, OUT is the annotated image file; for several
images or a folder, OUT is a folder (created) receiving ``<name>_faces.jpg``
per input; for a video, OUT is the annotated video (MPEG-4).

Exit code: 0 when every input was processed (a photo without a face is a
valid result: a warning on stderr, ``"faces": []`` in JSON); 1 when any input
could not be read (the others are still processed) or the models could not
be loaded; 2 for a wrong command line.

The helpers below (model options, input collection, the per-file loop) are
shared with ``faceops blur``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from faceops.errors import FaceopsError, ImageReadError, VideoOpenError
from faceops.image_io import MAX_PIXELS, VideoReader, is_video, list_images, read_image

log = logging.getLogger(__name__)


# -- options and objects shared with `faceops blur` ------------------------------------------


def add_model_arguments(parser: argparse.ArgumentParser, det_thresh: float = 0.5) -> None:
    """Options choosing the models and how they run."""
    parser.add_argument("--pack", default="buffalo_s", help="model pack from weights/manifest.json (default: buffalo_s; "
                        "'open' for permissively licensed models)")
    parser.add_argument("--detector", default=None, help="detector model instead of the pack's "
                        "(scrfd_500m, yunet, retinaface_mnet025, blazeface_full, blazeface_short)")
    parser.add_argument("--backend", default="minicnn", choices=("minicnn", "onnxruntime"),
                        help="inference engine (default: minicnn; onnxruntime is the reference)")
    parser.add_argument("--det-size", type=int, default=None, metavar="N",
                        help="detector input size N x N (default: 640, or the size fixed in the model file)")
    parser.add_argument("--det-thresh", type=float, default=det_thresh, metavar="T",
                        help=f"minimum detection score (default: {det_thresh})")
    parser.add_argument("--max-num", type=int, default=0, metavar="K",
                        help="keep the K most prominent faces per image (default: all)")
    parser.add_argument("--downscale-huge", action="store_true",
                        help=f"shrink images above {MAX_PIXELS // 1_000_000} megapixels instead of refusing them")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders of images, or video files")
    parser.add_argument("--example", action="store_true",
                        help="add the bundled example photo t1 (6 faces; fetched on first use)")
    parser.add_argument("--recursive", action="store_true", help="look into subfolders of folder inputs")


def build_app(args: argparse.Namespace, allowed_modules=None):
    """The ``FaceAnalysis`` the options ask for, prepared."""
    from faceops.analysis import FaceAnalysis  # imported here so `faceops --help` does not load the models

    app = FaceAnalysis(pack=args.pack, allowed_modules=allowed_modules, backend=args.backend, detector=args.detector)
    app.prepare(det_size=None if args.det_size is None else (args.det_size, args.det_size), det_thresh=args.det_thresh)
    return app


def collect_inputs(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(images, videos) named on the command line, folders expanded, ``--example`` added."""
    inputs = [Path(p) for p in args.inputs]
    if args.example:
        from faceops import weights

        inputs.append(weights.photo_path("t1"))
    videos = [p for p in inputs if is_video(p) and not p.is_dir()]
    images = list_images([p for p in inputs if p not in videos], recursive=args.recursive)
    return images, videos


def draw_target(out: Path, image: Path, many: bool, suffix: str) -> Path:
    """Where the output for ``image`` goes: ``out`` itself for one input, else ``out/<stem><suffix>.jpg``."""
    if many or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{image.stem}{suffix}{image.suffix if image.suffix.lower() in ('.png', '.jpg', '.jpeg') else '.jpg'}"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def write_image(path: Path, img: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix or ".jpg", img)
    if not ok:
        raise ImageReadError(f"{path}: OpenCV cannot write images of type {path.suffix!r}; use .jpg or .png")
    path.write_bytes(data.tobytes())


def process_video(path: Path, on_frame: Callable[[int, np.ndarray], np.ndarray | None], out: Path | None,
                  quiet: bool = False) -> int:
    """Run ``on_frame(index, frame)`` on every frame, writing what it returns to video ``out`` if given.

    Shows a tqdm progress bar on stderr and reports frames per second at
    the end. Returns the number of frames.
    """
    from tqdm import tqdm

    writer = None
    start = time.perf_counter()
    count = 0
    with VideoReader(path) as video:
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), video.fps, video.size)
            if not writer.isOpened():
                raise VideoOpenError(f"{out}: cannot be created as a video file (try a .mp4 name)")
        try:
            for index, frame in tqdm(video, total=video.frame_count or None, desc=path.name, unit="frame",
                                     disable=quiet, file=sys.stderr):
                result = on_frame(index, frame)
                if writer is not None and result is not None:
                    writer.write(result)
                count += 1
        finally:
            if writer is not None:
                writer.release()
    seconds = time.perf_counter() - start
    print(f"{path}: {count} frames in {seconds:.1f} s ({count / max(seconds, 1e-9):.2f} frames/s)"
          + (f"; wrote {out}" if out is not None else ""), file=sys.stderr)
    return count


# -- faceops analyze -------------------------------------------------------------------------


def describe_face(index: int, face) -> str:
    x1, y1, x2, y2 = face.bbox
    text = f"  face {index}: box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) score {face.det_score:.3f}"
    if face.gender is not None or face.age is not None:
        text += f" {face.sex or '?'} age {'?' if face.age is None else f'{face.age:.0f}'}"
    if face.expression is not None:
        text += f" {face.expression}"
    if face.pose is not None:
        text += " pose (pitch, yaw, roll) ({:.0f}, {:.0f}, {:.0f})".format(*face.pose)
    if face.embedding is not None:
        text += f" embedding {len(face.embedding)}-D ({face.embedding_model})"
    return text


def report(path: Path, img: np.ndarray, faces, as_json: bool, frame: int | None = None) -> None:
    where = f"{path}" if frame is None else f"{path} frame {frame}"
    if as_json:
        record = {"path": str(path)}
        if frame is not None:
            record["frame"] = frame
        record.update(width=img.shape[1], height=img.shape[0], faces=[f.to_dict() for f in faces])
        print(json.dumps(record))
        return
    if frame is not None:
        return  # per-frame text would flood the terminal; the progress bar and summary say enough
    print(f"{where}: {len(faces)} face{'s' if len(faces) != 1 else ''} ({img.shape[1]}x{img.shape[0]})")
    for i, face in enumerate(faces):
        print(describe_face(i, face))


def run_analyze(args: argparse.Namespace) -> int:
    from faceops.draw import draw_faces

    images, videos = collect_inputs(args)
    if not images and not videos:
        print("faceops analyze: give an image, folder or video (or --example)", file=sys.stderr)
        return 2
    try:
        app = build_app(args, allowed_modules=args.modules.split(",") if args.modules else None)
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    draw_out = Path(args.draw) if args.draw else None
    many = len(images) + len(videos) > 1 or any(Path(p).is_dir() for p in args.inputs)
    failures = 0

    for path in images:
        try:
            img = read_image(path, downscale_huge=args.downscale_huge)
            faces = app.get(img, max_num=args.max_num)
            report(path, img, faces, args.json)
            if not faces:
                print(f"warning: {path}: no face found", file=sys.stderr)
            if draw_out is not None:
                target = draw_target(draw_out, path, many, "_faces")
                write_image(target, draw_faces(img, faces))
                log.info("wrote %s", target)
        except FaceopsError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"path": str(path), "error": str(exc)}))

    for path in videos:
        target = None
        if draw_out is not None:
            target = draw_out if not many else draw_out / f"{path.stem}_faces.mp4"

        def on_frame(index, frame, path=path):
            faces = app.get(frame, max_num=args.max_num)
            report(path, frame, faces, args.json, frame=index)
            return draw_faces(frame, faces) if target is not None else None

        try:
            process_video(path, on_frame, target)
        except FaceopsError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"path": str(path), "error": str(exc)}))

    if failures:
        print(f"{failures} of {len(images) + len(videos)} input(s) failed", file=sys.stderr)
    return 1 if failures else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="detect faces (and run the pack's other models) in images, folders or videos",
        description="Run the face pipeline on photos, folders or videos. Exit code 0: every input processed "
        "(also when no face was found); 1: an input could not be read or the models could not be loaded; 2: usage.",
    )
    add_input_arguments(parser)
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout: one object per image (or frame)")
    parser.add_argument("--draw", metavar="OUT", help="write annotated image(s) or video to OUT")
    parser.add_argument("--modules", default=None, metavar="M1,M2",
                        help="run only these modules of the pack, e.g. detection,recognition (default: all)")
    add_model_arguments(parser)
    parser.set_defaults(func=run_analyze)
