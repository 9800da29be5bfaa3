"""``faceops blur``: hide every face in a photo, a folder of photos or a video.

    faceops blur IN OUT [--method gaussian|pixelate|fill] [--margin 0.25]

IN is an image, a folder or a video; OUT is then an image file, a folder
(one output per input, same names) or a video file. Only the detector runs.
The default detection threshold is lower than for ``analyze`` (0.3 instead
of 0.5): here a missed face costs more than a blurred patch of background.
Read docs/privacy.md: blurring and pixelation are not irreversible, "fill" is.

Exit code: 0 when every input was processed, 1 when any failed, 2 for usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceops.blur import METHODS, blur_faces
from faceops.cli.analyze import add_model_arguments, build_app, process_video, write_image
from faceops.errors import FaceopsError
from faceops.image_io import is_video, list_images, read_image

BLUR_DET_THRESH = 0.3


def run_blur(args: argparse.Namespace) -> int:
    source, out = Path(args.input), Path(args.output)
    try:
        app = build_app(args, allowed_modules=["detection"])
    except FaceopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def hide(img):
        faces = app.get(img, max_num=args.max_num)
        return blur_faces(img, faces, method=args.method, margin=args.margin), len(faces)

    if is_video(source) and not source.is_dir():
        try:
            process_video(source, lambda index, frame: hide(frame)[0], out)
        except FaceopsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    images = list_images(source, recursive=args.recursive)
    if source.is_dir():
        out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in images:
        target = out / path.relative_to(source) if source.is_dir() else out
        try:
            img = read_image(path, downscale_huge=args.downscale_huge)
            hidden, count = hide(img)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, hidden)
            print(f"{path}: {count} face{'s' if count != 1 else ''} hidden -> {target}")
            if count == 0:
                print(f"warning: {path}: no face found; written unchanged", file=sys.stderr)
        except FaceopsError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
    if failures:
        print(f"{failures} of {len(images)} input(s) failed", file=sys.stderr)
    return 1 if failures else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "blur",
        help="blur, pixelate or black out every face in an image, folder or video",
        description="Hide every detected face (a margin around its box). Exit code 0: every input processed; "
        "1: an input failed; 2: usage. Blurring and pixelation are reversible in part: see docs/privacy.md.",
    )
    parser.add_argument("input", metavar="IN", help="image, folder of images, or video")
    parser.add_argument("output", metavar="OUT", help="output image, folder, or video (.mp4)")
    parser.add_argument("--method", choices=METHODS, default="gaussian", help="how to hide a face (default: gaussian)")
    parser.add_argument("--margin", type=float, default=0.25,
                        help="grow each box by this fraction of its size on every side (default: 0.25)")
    parser.add_argument("--recursive", action="store_true", help="look into subfolders of a folder input")
    add_model_arguments(parser, det_thresh=BLUR_DET_THRESH)
    parser.set_defaults(func=run_blur)
