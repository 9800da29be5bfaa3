"""3D face reconstruction: a morphable model, a least-squares fitter, 3DDFA_V2's regression, meshes.

See docs/reconstruction.md. The pieces, one file each:

* ``model``: :class:`MorphableModel` (mean + identity + expression bases),
  :func:`load_bfm` (3DDFA_V2's Basel Face Model, standardised, in mm);
* ``fitting``: :func:`fit_shape_and_pose` (eos-style alternating linear
  least squares) returning a :class:`FitResult`;
* ``landmarks``: where 68 points come from (2d106det through a derived
  106 -> 68 table, or 3DDFA_V2);
* ``tddfa``: 3DDFA_V2's own answer, its 62 regressed parameters as a mesh;
* ``render`` and ``export``: z-buffered shaded overlays, OBJ and PLY files;
* ``pipeline``: :func:`fit_faces`, the whole recipe for the faces of a photo.
"""

from faceops.morphable.fitting import (
    Camera,
    FitResult,
    FittingError,
    estimate_camera,
    fit_coefficients,
    fit_landmarks_68,
    fit_shape_and_pose,
    pose_to_rotation,
    rotation_to_pose,
)
from faceops.morphable.model import MorphableModel, five_point_vertices, load_bfm, random_model

__all__ = [
    "Camera", "FitResult", "FittingError", "MorphableModel", "estimate_camera", "fit_coefficients",
    "fit_landmarks_68", "fit_shape_and_pose", "five_point_vertices", "load_bfm", "pose_to_rotation",
    "random_model", "rotation_to_pose",
]
