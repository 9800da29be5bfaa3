"""3D reconstruction benchmark: sparse fits per second, dense mesh building, rendering, export.

What is timed (the real BFM: 38,365 vertices, 76k triangles, 40 identity +
10 expression coefficients), each as the median of ``--reps`` runs after
one warm-up call (whose time is reported separately where it includes
Numba compilation):

* ``fit``: :func:`fit_shape_and_pose` on 68 landmarks, 5 iterations (the
  target: under 5 ms);
* ``fit (1 iter)`` and ``camera only``: what one round and one pose solve cost;
* ``dense mesh``: ``model.vertices(c_id, c_exp)`` for all vertices, and
  ``image vertices`` (the camera applied to that mesh, which ``FitResult`` caches);
* ``rasterize``: the Numba z-buffer rasteriser drawing the face ~200 px wide
  into a 640x480 image; ``rasterize_reference``: the NumPy reference on the
  same mesh, once (the ratio between the two is the point);
* ``overlay``: shading + rasterising + blending, what ``--render`` does per face;
* ``vertex colours`` and ``write OBJ``.

    python benchmarks/bench_fit.py [--reps 50]

Prints a Markdown table. Times on a shared 2-core machine are noisy:
compare the ratios in one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceops.morphable import Camera, estimate_camera, fit_landmarks_68, load_bfm, pose_to_rotation  # noqa: E402
from faceops.morphable.export import sample_vertex_colours, write_obj  # noqa: E402
from faceops.morphable.render import rasterize, rasterize_reference, render_overlay, shaded_colours  # noqa: E402


def timed(fn, reps: int) -> tuple[float, float]:
    """(first call, median of ``reps`` later calls), in milliseconds."""
    start = time.perf_counter()
    fn()
    first = (time.perf_counter() - start) * 1e3
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()

    start = time.perf_counter()
    model = load_bfm()
    load_ms = (time.perf_counter() - start) * 1e3

    rng = np.random.default_rng(0)
    camera = Camera(pose_to_rotation(10.0, -25.0, 5.0), 1.3, np.array([320.0, 240.0]))
    c_id, c_exp = rng.normal(size=model.n_shape), rng.normal(size=model.n_expression)
    landmarks = camera.project(model.vertices(c_id, c_exp, indices=model.landmark_vertices))
    landmarks += rng.normal(0.0, 1.0, landmarks.shape)
    fit = fit_landmarks_68(model, landmarks)
    image_vertices = fit.image_vertices()
    colours = shaded_colours(image_vertices, model.triangles)
    photo = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)

    rows = []

    def add(name, fn, reps=args.reps, note=""):
        first, median = timed(fn, reps)
        rows.append((name, first, median, note))
        return median

    fit_ms = add("fit (68 points, 40+10 coeffs, 5 iterations)", lambda: fit_landmarks_68(model, landmarks))
    add("fit, 1 iteration", lambda: fit_landmarks_68(model, landmarks, n_iterations=1))
    lm3d = model.vertices(fit.shape_coeffs, fit.expression_coeffs, indices=model.landmark_vertices)
    add("camera only (2N x 8 solve + SVD)", lambda: estimate_camera(landmarks, lm3d))
    add("dense mesh: model.vertices (38,365 x 50)", lambda: model.vertices(fit.shape_coeffs, fit.expression_coeffs))
    add("image vertices (camera applied to the built mesh)", lambda: fit.camera.to_image(fit.vertices))
    raster_ms = add("rasterize, Numba (76k triangles, 640x480)",
                    lambda: rasterize(image_vertices, model.triangles, colours, 480, 640),
                    note="first call includes JIT compile or cache load")
    ref_ms = add("rasterize_reference, NumPy (same mesh)",
                 lambda: rasterize_reference(image_vertices, model.triangles, colours, 480, 640), reps=1)
    add("overlay (shade + rasterize + blend)", lambda: render_overlay(photo, [(image_vertices, model.triangles)]))
    add("vertex colours (z-buffer visibility + bilinear)",
        lambda: sample_vertex_colours(photo, image_vertices, model.triangles))
    with tempfile.TemporaryDirectory() as tmp:
        add("write OBJ with colours", lambda: write_obj(Path(tmp) / "f.obj", fit.vertices, model.triangles,
                                                        np.zeros((model.n_vertices, 3), np.uint8)), reps=3)

    print(f"BFM load + triangulation: {load_ms:.0f} ms (once per process)\n")
    print("| step | first call ms | median ms | note |")
    print("|---|---:|---:|---|")
    for name, first, median, note in rows:
        print(f"| {name} | {first:.2f} | {median:.2f} | {note} |")
    print(f"\nsparse fits per second: {1e3 / fit_ms:.0f} (target: a fit under 5 ms -> "
          f"{'met' if fit_ms < 5 else 'NOT met'}: {fit_ms:.2f} ms)")
    print(f"Numba rasteriser vs NumPy reference on the BFM mesh: {ref_ms / raster_ms:.0f}x faster")


if __name__ == "__main__":
    main()
