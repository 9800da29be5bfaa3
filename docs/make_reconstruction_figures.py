"""Make the figures and numbers of docs/reconstruction.md.

    python docs/make_reconstruction_figures.py [--backend onnxruntime]

On t1.jpg's 6 faces and the astronaut (SCRFD-500M boxes, 2d106det landmarks
through the 106->68 table, 3DDFA_V2 for comparison) it

* sweeps the regularisation weight lambda and plots, against it, the
  landmark reprojection error (RMS / inter-ocular distance), the norm of
  the fitted coefficients, and the pose difference to 3DDFA_V2
  (``docs/img/recon_lambda.png``);
* prints the per-face table of the default fit (error, pose, 3DDFA pose) as
  Markdown, plus the same for the 5 detector key points and for 3DDFA_V2's
  own 68 landmarks as the fitter's input;
* draws the fitted meshes over t1 (``docs/img/recon_overlay.jpg``) and, for
  the astronaut, frontal / side / photo-coloured views of our fit beside
  3DDFA_V2's regressed mesh (``docs/img/recon_views.png``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faceops  # noqa: E402
from faceops import weights  # noqa: E402
from faceops.morphable import fit_shape_and_pose, load_bfm  # noqa: E402
from faceops.morphable.export import sample_vertex_colours  # noqa: E402
from faceops.morphable.fitting import DEFAULT_SHAPE_LAMBDA  # noqa: E402
from faceops.morphable.landmarks import correspondences, inter_ocular_distance  # noqa: E402
from faceops.morphable.render import render_overlay, render_view  # noqa: E402
from faceops.morphable.tddfa import TDDFA  # noqa: E402

IMG_DIR = ROOT / "docs" / "img"
LAMBDAS = [0.01, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000]


def fit_table(model, tddfa, photos, source: str, lam: float):
    """Per face: (photo name, rms px, rms / iod, coefficient norm, our pose, 3DDFA pose)."""
    rows = []
    for name, img, faces in photos:
        for face in faces:
            points, indices = correspondences(model, source, face=face, img_bgr=img, tddfa=tddfa)
            fit = fit_shape_and_pose(model, points, indices, shape_lambda=lam, expression_lambda=lam)
            iod = inter_ocular_distance(correspondences(model, "106", face)[0])
            coeffs = np.concatenate([fit.shape_coeffs, fit.expression_coeffs])
            rows.append((name, fit.rms_error, fit.rms_error / iod, np.linalg.norm(coeffs), fit.pose,
                         tddfa.predict(img, face.bbox).pose))
    return rows


def summary(rows) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    rel = np.array([r[2] for r in rows])
    diff = np.abs(np.array([r[4] - r[5] for r in rows]))
    return rel.mean(), rel.max(), np.mean([r[3] for r in rows]), diff.mean(axis=0), diff.max(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="onnxruntime", choices=("minicnn", "onnxruntime"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = load_bfm()
    tddfa = TDDFA(backend=args.backend, model=model)
    app = faceops.FaceAnalysis(pack="buffalo_s", allowed_modules=["detection", "landmark_2d_106"], backend=args.backend)
    app.prepare(det_size=(640, 640))
    photos = []
    for name in ("t1", "astronaut"):
        img = faceops.read_image(weights.photo_path(name))
        photos.append((name, img, app.get(img)))

    # -- lambda sweep --
    sweep = [summary(fit_table(model, tddfa, photos, "106", lam)) for lam in LAMBDAS]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].semilogx(LAMBDAS, [s[0] for s in sweep], "o-", label="mean")
    axes[0].semilogx(LAMBDAS, [s[1] for s in sweep], "s--", label="worst face")
    axes[0].set_ylabel("landmark RMS error / inter-ocular distance")
    axes[1].semilogx(LAMBDAS, [s[2] for s in sweep], "o-")
    axes[1].axhline(np.sqrt(model.n_shape + model.n_expression), color="grey", ls=":",
                    label="typical face: sqrt(50)")
    axes[1].set_ylabel("|coefficients| (standardised)")
    for k, label in enumerate(("pitch", "yaw", "roll")):
        axes[2].semilogx(LAMBDAS, [s[3][k] for s in sweep], "o-", label=label)
    axes[2].set_ylabel("mean |angle - 3DDFA_V2's| (degrees)")
    for ax in axes:
        ax.axvline(DEFAULT_SHAPE_LAMBDA, color="red", ls=":", lw=1)
        ax.set_xlabel("lambda (mm^2)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    axes[2].legend()
    fig.suptitle("Regularisation: 7 faces (t1 + astronaut), 2d106det landmarks via the 106->68 table; "
                 "red: the default")
    fig.tight_layout()
    fig.savefig(IMG_DIR / "recon_lambda.png", dpi=110)
    print("| lambda | mean RMS/IOD | worst RMS/IOD | mean coeff norm | mean abs pitch/yaw/roll diff to 3DDFA |")
    print("|---:|---:|---:|---:|---|")
    for lam, s in zip(LAMBDAS, sweep):
        print(f"| {lam:g} | {s[0]:.3f} | {s[1]:.3f} | {s[2]:.1f} | {np.round(s[3], 1).tolist()} |")

    # -- the default fit, per face and per landmark source --
    for source in ("106", "5", "3ddfa"):
        rows = fit_table(model, tddfa, photos, source, DEFAULT_SHAPE_LAMBDA)
        s = summary(rows)
        print(f"\nsource {source}: RMS/IOD mean {s[0]:.3f} max {s[1]:.3f}; |pose diff| to 3DDFA "
              f"mean {np.round(s[3], 1).tolist()} max {np.round(s[4], 1).tolist()} (pitch, yaw, roll)")
        if source == "106":
            print("\n| photo | RMS px | RMS/IOD | ours pitch/yaw/roll | 3DDFA_V2 pitch/yaw/roll |")
            print("|---|---:|---:|---|---|")
            for name, rms, rel, _, ours, theirs in rows:
                print(f"| {name} | {rms:.1f} | {rel:.3f} | {np.round(ours, 1).tolist()} "
                      f"| {np.round(theirs, 1).tolist()} |")

    # -- pictures --
    name, img, faces = photos[0]
    fits = [fit_shape_and_pose(model, *correspondences(model, "106", face)) for face in faces]
    overlay = render_overlay(img, [(fit.image_vertices(), model.triangles) for fit in fits])
    cv2.imwrite(str(IMG_DIR / "recon_overlay.jpg"), overlay, [cv2.IMWRITE_JPEG_QUALITY, 85])

    name, img, faces = photos[1]
    fit = fit_shape_and_pose(model, *correspondences(model, "106", faces[0]))
    prediction = tddfa.predict(img, faces[0].bbox)
    theirs = model.vertices(prediction.shape_coeffs, prediction.expression_coeffs)
    size = 220
    x1, y1, x2, y2 = faces[0].bbox.astype(int)
    pad = (x2 - x1) // 3
    window = (slice(max(y1 - pad, 0), y2 + pad), slice(max(x1 - pad, 0), x2 + pad))

    def around_face(picture):
        return cv2.resize(picture[window], (size, size))

    colours_bgr = sample_vertex_colours(img, fit.image_vertices(), model.triangles)[:, ::-1]
    top = np.hstack([around_face(img),
                     around_face(render_overlay(img, [(fit.image_vertices(), model.triangles)])),
                     render_view(fit.vertices, model.triangles, yaw=-35, size=size, colours=colours_bgr),
                     render_view(fit.vertices, model.triangles, yaw=90, size=size)])
    bottom = np.hstack([np.full((size, size, 3), 40, np.uint8),
                        around_face(render_overlay(img, [(prediction.image_vertices(), model.triangles)])),
                        render_view(theirs, model.triangles, yaw=0, size=size),
                        render_view(theirs, model.triangles, yaw=90, size=size)])
    for row, label in ((top, "least-squares fit (2d106det)"), (bottom, "3DDFA_V2 regression")):
        cv2.putText(row, label, (8, size - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(IMG_DIR / "recon_views.png"), np.vstack([top, bottom]))
    print(f"\nwrote {IMG_DIR / 'recon_lambda.png'}, recon_overlay.jpg, recon_views.png")


if __name__ == "__main__":
    main()
