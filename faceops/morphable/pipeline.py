"""Photo in, fitted faces out: the course's recipe (detect, find landmarks, fit the model) in one call.

    from faceops import FaceAnalysis, read_image
    from faceops.morphable.pipeline import fit_faces

    app = FaceAnalysis(pack="buffalo_s", allowed_modules=["detection", "landmark_2d_106"])
    img = read_image("photo.jpg")
    fits = fit_faces(img, app.get(img))            # one FitResult per face
    fits[0].pose, fits[0].image_vertices()

``faceops reconstruct`` (``faceops/cli/reconstruct.py``) is this plus files.
"""

from __future__ import annotations

import logging

import numpy as np

from faceops.morphable.fitting import FitResult, fit_shape_and_pose
from faceops.morphable.landmarks import correspondences
from faceops.morphable.model import MorphableModel, load_bfm

log = logging.getLogger(__name__)


def fit_faces(img_bgr: np.ndarray, faces, source: str = "106", model: MorphableModel | None = None,
              tddfa=None, **fit_kwargs) -> list[FitResult]:
    """Fit ``model`` (default the BFM) to every face in ``faces`` (``faceops.Face`` objects of ``img_bgr``).

    ``source`` picks the landmarks ("106", "3ddfa" or "5", see
    ``faceops.morphable.landmarks``; "3ddfa" needs ``tddfa``, a
    ``faceops.morphable.tddfa.TDDFA``). ``fit_kwargs`` go to
    :func:`faceops.morphable.fitting.fit_shape_and_pose` (``n_iterations``,
    ``shape_lambda``, ``expression_lambda``).
    """
    model = model if model is not None else load_bfm()
    fits = []
    for face in faces:
        points, indices = correspondences(model, source, face=face, img_bgr=img_bgr, tddfa=tddfa)
        fit = fit_shape_and_pose(model, points, indices, **fit_kwargs)
        log.debug("face at %s: pose %s, rms %.2f px", np.round(face.bbox).tolist(), np.round(fit.pose, 1),
                  fit.rms_error)
        fits.append(fit)
    return fits
