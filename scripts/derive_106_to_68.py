"""Derive which of 2d106det's 106 landmarks best stands in for each iBUG-68 landmark, from data.

The 106-point scheme (InsightFace 2d106det) and the 68-point one (iBUG
300-W, what the BFM's landmark vertices follow) mark different places; no
official table links them. We measure one: run both models on the same
faces -- 2d106det for 106 points, 3DDFA_V2 (``faceops.morphable.tddfa``) for
68 -- and, for each of the 68, pick the 106 point closest to it on average,
distances divided by the face's inter-ocular distance (between the two eye
centres of the 68 points) so large and small faces count alike.

Faces: the 6 of t1.jpg and the astronaut, each also mirrored left-right
(both models run on the mirrored photo: 14 faces). Writes
``faceops/data/landmarks_106_to_68.json`` with the table, each entry's mean
error and the overall mean error.

    python scripts/derive_106_to_68.py [--backend onnxruntime]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import faceops
from faceops import weights
from faceops.morphable.landmarks import TABLE_PATH, inter_ocular_distance
from faceops.morphable.tddfa import TDDFA

PHOTOS = ("t1", "astronaut")


def collect(backend: str) -> tuple[np.ndarray, np.ndarray]:
    """(F, 106, 2) and (F, 68, 2) landmarks of every face of the photos and their mirror images."""
    app = faceops.FaceAnalysis(pack="buffalo_s", allowed_modules=["detection", "landmark_2d_106"], backend=backend)
    app.prepare(det_size=(640, 640))
    tddfa = TDDFA(backend=backend)
    points_106, points_68 = [], []
    for name in PHOTOS:
        photo = faceops.read_image(weights.photo_path(name))
        for img in (photo, np.ascontiguousarray(photo[:, ::-1])):
            for face in app.get(img):
                points_106.append(face.landmark_2d_106[:, :2])
                points_68.append(tddfa.predict(img, face.bbox).landmarks_68()[:, :2])
    return np.array(points_106, dtype=np.float64), np.array(points_68, dtype=np.float64)


def derive(points_106: np.ndarray, points_68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of the 68: the 106 index of least mean normalised distance, and that distance."""
    iod = np.array([inter_ocular_distance(p) for p in points_68])  # (F,)
    # distance[f, j, k] = |p68[f, j] - p106[f, k]| / iod[f]
    distance = np.linalg.norm(points_68[:, :, None, :] - points_106[:, None, :, :], axis=-1) / iod[:, None, None]
    mean_distance = distance.mean(axis=0)  # (68, 106)
    table = mean_distance.argmin(axis=1)
    return table, mean_distance[np.arange(68), table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="minicnn", choices=("minicnn", "onnxruntime"))
    parser.add_argument("-o", "--output", type=Path, default=TABLE_PATH)
    args = parser.parse_args()

    points_106, points_68 = collect(args.backend)
    table, errors = derive(points_106, points_68)
    record = {
        "about": "For each iBUG-68 landmark (position in the list), the 2d106det landmark that stands in for it. "
                 "Derived by scripts/derive_106_to_68.py: nearest on average to 3DDFA_V2's 68 landmarks over "
                 f"{len(points_68)} faces (t1.jpg and astronaut.png, each also mirrored); errors are mean "
                 "distances divided by the inter-ocular distance.",
        "faces": int(len(points_68)),
        "index_106": [int(i) for i in table],
        "mean_error_iod": [round(float(e), 4) for e in errors],
        "overall_mean_error_iod": round(float(errors.mean()), 4),
    }
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{len(points_68)} faces; mean error {errors.mean():.4f} x inter-ocular distance "
          f"(worst: landmark {int(errors.argmax())}, {errors.max():.4f}); wrote {args.output}")


if __name__ == "__main__":
    main()
