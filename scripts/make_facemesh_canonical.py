"""Build faceops/data/facemesh_canonical.npz: the frontal FaceMesh mean shape used for head pose.

``faceops.landmarks.FaceMesh468`` computes a face's pose as the rotation
taking a frontal mean shape onto its 468 points. MediaPipe's own
``canonical_face_model`` is not in any wheel we fetch, so we derive one from
FaceMesh itself, on the frontal astronaut photo (public domain):

1. detect the face (SCRFD-500M) and run FaceMesh on it: ``S`` (468, 3) in the
   image frame (x right, y down, z towards the camera, see faceops.landmarks);
2. run FaceMesh on the mirrored photo and flip its x back: ``U``. Point ``j``
   of ``U`` lies on the facial feature that is the left-right partner of
   feature ``j``, so the assignment minimising ``sum |U[j] - S[mirror[j]]|``
   (``scipy.optimize.linear_sum_assignment``) gives FaceMesh's mirror
   permutation ``mirror`` (landmarks on the midline map to themselves);
3. symmetrise: ``C = (S + reflect(S)[mirror]) / 2``, where ``reflect`` negates
   x. ``C`` equals its own mirror image exactly, so a face looking straight
   at the camera has yaw 0 and roll 0 against it; the small yaw and roll of
   the astronaut herself cancel (pitch is untouched by mirroring, so "pitch 0"
   means her head's tilt in this photo, which is close to level);
4. centre ``C`` at the origin and scale it to unit RMS radius.

Run (writes the file, prints a summary)::

    python scripts/make_facemesh_canonical.py [--backend onnxruntime]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faceops import weights  # noqa: E402
from faceops.analysis import FaceAnalysis  # noqa: E402
from faceops.image_io import read_image  # noqa: E402
from faceops.landmarks import FACEMESH_CANONICAL, FaceMesh468  # noqa: E402


def mesh_of(app: FaceAnalysis, mesh: FaceMesh468, img: np.ndarray) -> np.ndarray:
    faces = app.get(img, max_num=1)
    if not faces:
        raise SystemExit("no face found in the astronaut photo")
    points, presence = mesh.predict(img, faces[0])
    print(f"face box {np.round(faces[0].bbox, 1).tolist()}, FaceMesh presence {presence:.3f}")
    return points.astype(np.float64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="minicnn", choices=("minicnn", "onnxruntime"))
    parser.add_argument("--out", type=Path, default=FACEMESH_CANONICAL)
    args = parser.parse_args(argv)

    img = read_image(weights.photo_path("astronaut"))
    app = FaceAnalysis("buffalo_s", allowed_modules=["detection"], backend=args.backend)
    mesh = FaceMesh468("facemesh", backend=args.backend)
    S = mesh_of(app, mesh, img)
    U = mesh_of(app, mesh, np.ascontiguousarray(img[:, ::-1]))
    U[:, 0] = (img.shape[1] - 1) - U[:, 0]  # pixel i of the flipped image is pixel W-1-i of the original

    cost = np.linalg.norm(U[:, None, :] - S[None, :, :], axis=2)
    rows, mirror = linear_sum_assignment(cost)
    mirror = mirror[np.argsort(rows)]
    not_involution = int(np.sum(mirror[mirror] != np.arange(len(mirror))))
    if not_involution:
        raise SystemExit(f"the mirror assignment is not its own inverse for {not_involution} points; "
                         "FaceMesh's outputs on the photo and its mirror disagree too much")
    print(f"mirror pairing: {int(np.sum(mirror == np.arange(len(mirror))))} midline points, "
          f"{int(np.sum(mirror != np.arange(len(mirror)))) // 2} left-right pairs; "
          f"median pairing distance {np.median(cost[np.arange(len(mirror)), mirror]):.2f} px")

    reflected = S.copy()
    reflected[:, 0] = -reflected[:, 0]
    canonical = (S + reflected[mirror]) / 2.0
    canonical -= canonical.mean(axis=0)
    canonical /= np.sqrt((canonical**2).sum(axis=1).mean())

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, mean_shape=canonical.astype(np.float32), mirror_index=mirror.astype(np.int16))
    print(f"wrote {args.out} (mean_shape {canonical.shape}, mirror_index {mirror.shape})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
