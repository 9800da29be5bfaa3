"""Fitting a 3D morphable model to 2D landmarks by linear least squares (the eos way).

Given N image points ``y_i`` (pixels, x right, y down) and the model vertex
``v_i`` each one belongs to, find a pose and coefficients such that

    y_i ~= s F R X_i(c_id, c_exp) + t,    F = [[1, 0, 0], [0, -1, 0]]          (2)

with ``X_i = mean_i + S_i c_id + E_i c_exp`` (``faceops.morphable.model``),
``R`` a rotation, ``s`` a scale (pixels per model unit), ``t`` (2,) a pixel
translation: a **scaled orthographic** camera (a face is small compared to
its distance from the camera, so perspective is negligible). ``F`` drops
depth and flips y, because the model's y points up and the image's down.

Equation (2) is not linear in everything at once, but it is linear in each
part when the others are held fixed, so we alternate (eos
``fit_shape_and_pose``; Aldrian & Smith, "Inverse rendering of faces with a
3D morphable model", PAMI 2013):

1. :func:`estimate_camera`: the pose from the current 3D landmarks
   (a linear 2N x 8 solve, then the nearest rotation);
2. :func:`fit_coefficients` for the expression, identity held fixed;
3. :func:`fit_coefficients` for the identity, expression held fixed;

starting from the mean face and repeating ``n_iterations`` times
(:func:`fit_shape_and_pose`). Each coefficient step is a ridge regression
whose weight ``lambda`` pulls the coefficients towards the mean face: with
few, noisy landmarks an unregularised fit explains the noise with absurd
shapes. ``docs/reconstruction.md`` shows its effect.

Not modelled (eos can): perspective, and "contour" landmarks -- the jaw line
of a turned face is the silhouette, which slides over the surface; here
each landmark is one fixed vertex, so jaw landmarks of a face turned past
~30 degrees pull the fit somewhat.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np

from faceops.errors import FaceopsError
from faceops.morphable.model import MorphableModel

log = logging.getLogger(__name__)

MIN_POINTS = 4  # the affine camera has 8 unknowns: 4 points give 8 equations
DEFAULT_SHAPE_LAMBDA = 10.0
DEFAULT_EXPRESSION_LAMBDA = 10.0
DEFAULT_ITERATIONS = 5
# Points whose spread across their weakest direction is below this fraction
# of the strongest are treated as collinear (2D) or coplanar (3D).
DEGENERACY_RATIO = 1e-6

FLIP_Y = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # F in equation (2)


class FittingError(FaceopsError, ValueError):
    """The landmarks cannot be fitted: too few, not finite, degenerate, or not matching their vertex indices."""


@dataclass(frozen=True)
class Camera:
    """A scaled orthographic camera: ``image = s F R X + t`` (equation (2))."""

    rotation: np.ndarray  # (3, 3), det +1
    scale: float  # image pixels per model unit
    translation: np.ndarray  # (2,) pixels

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) model points -> (N, 2) image pixels."""
        return self.scale * (points @ (FLIP_Y @ self.rotation).T) + self.translation

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) model points -> (N, 3): image x, y in pixels and depth z in pixels, larger = closer.

        z is the rotated model z times the scale: the same units as x and y,
        the convention of ``Face.landmark_3d_68`` (its absolute offset is
        arbitrary; here 0 is the model origin's depth).
        """
        rotated = self.scale * (points @ self.rotation.T)
        return np.column_stack([rotated[:, 0] + self.translation[0], -rotated[:, 1] + self.translation[1],
                                rotated[:, 2]])


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation closest to ``matrix`` (3x3) in the Frobenius norm.

    With the SVD ``M = U diag(sigma) V^T``, the answer is ``U V^T``; if that
    has determinant -1 (a reflection), the sign of U's last column (the
    weakest direction) is flipped, giving ``U diag(1, 1, -1) V^T``.
    """
    u, _, vt = np.linalg.svd(matrix)
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] = -u[:, -1]
    return u @ vt


def estimate_camera(points_2d: np.ndarray, points_3d: np.ndarray) -> Camera:
    """The scaled orthographic camera best mapping ``points_3d`` (N, 3) onto ``points_2d`` (N, 2).

    Step 1, the affine camera. Each correspondence gives two equations,
    linear in the 8 entries of a general affine camera ``(a1, a2)``:

        x_i = a1 . [X_i, Y_i, Z_i, 1],   y_i = a2 . [X_i, Y_i, Z_i, 1]

    i.e. the 2N x 8 system with rows ``[X, Y, Z, 1, 0, 0, 0, 0]`` and
    ``[0, 0, 0, 0, X, Y, Z, 1]`` of eos. It is block diagonal, so it splits
    into two N x 4 least-squares problems sharing the matrix ``H = [X | 1]``:
    one ``lstsq(H, [x, y])`` solves both.

    Step 2, make it a rotation. For equation (2) the 3x3 parts are
    ``a1[:3] = s r1`` and ``a2[:3] = -s r2`` (image y is flipped), with r1,
    r2 the first two rows of R. Noise makes them unequal in length and not
    orthogonal, so: ``s = (|r1| + |r2|) / 2``, and R is
    :func:`nearest_rotation` of ``[r1/|r1|; r2/|r2|; r1/|r1| x r2/|r2|]``.

    Step 3, the translation: for fixed s and R, the least-squares t makes
    the mean residual zero: ``t = mean(y_i) - s F R mean(X_i)``.
    """
    homogeneous = np.column_stack([points_3d, np.ones(len(points_3d))])
    affine, *_ = np.linalg.lstsq(homogeneous, points_2d, rcond=None)  # (4, 2): columns a1, a2
    r1, r2 = affine[:3, 0], -affine[:3, 1]
    n1, n2 = np.linalg.norm(r1), np.linalg.norm(r2)
    if not (n1 > 0 and n2 > 0):
        raise FittingError("the camera estimate collapsed (a zero row): are the 2D points all the same?")
    r1, r2 = r1 / n1, r2 / n2
    rotation = nearest_rotation(np.stack([r1, r2, np.cross(r1, r2)]))
    scale = (n1 + n2) / 2.0
    translation = points_2d.mean(axis=0) - scale * (FLIP_Y @ rotation @ points_3d.mean(axis=0))
    return Camera(rotation=rotation, scale=float(scale), translation=translation)


def fit_coefficients(camera: Camera, points_2d: np.ndarray, fixed_3d: np.ndarray, basis: np.ndarray,
                     lam: float) -> np.ndarray:
    """Ridge regression for one set of coefficients, the rest of the model held fixed.

    With the camera fixed, equation (2) is linear in the coefficients ``c``
    of one basis ``B`` (N, 3, K) -- the identity or the expression basis at
    the landmark vertices -- the other part ``fixed_3d`` (N, 3) (the mean
    plus the other basis' contribution) being known. Measuring the
    residual in model units (pixels divided by s), we minimise

        E(c) = sum_i | (y_i - t)/s - F R (fixed_i + B_i c) |^2  +  lam |c|^2

    Setting the gradient to zero gives the normal equations

        (A^T A + lam I) c = A^T b,   A = [F R B_i]_i (2N x K),
                                     b = [(y_i - t)/s - F R fixed_i]_i (2N,)

    Because ``c`` is standardised (N(0, 1) a priori), ``lam`` is the squared
    landmark error (model units^2, mm^2 for the BFM) that one standard
    deviation of any coefficient costs: the MAP estimate for landmarks with
    Gaussian noise of variance ``lam`` mm^2 per coordinate. Residuals in
    model units, not pixels, make the fit independent of the face's size in
    the photo: scaling the 2D points changes only s and t (tested).
    ``lam = 0`` is plain least squares (needs 2N >= K).
    """
    projection = FLIP_Y @ camera.rotation  # (2, 3)
    a = np.einsum("pj,njk->npk", projection, basis).reshape(-1, basis.shape[2])
    b = ((points_2d - camera.translation) / camera.scale - fixed_3d @ projection.T).reshape(-1)
    normal = a.T @ a + lam * np.eye(a.shape[1])
    return np.linalg.solve(normal, a.T @ b)


@dataclass
class FitResult:
    """The outcome of :func:`fit_shape_and_pose`.

    ``residuals`` are the input points minus the fitted landmarks' projections
    (pixels, (N, 2)); the dense mesh is built on first access of
    ``vertices`` (model units) or :meth:`image_vertices` (pixels).
    """

    rotation: np.ndarray  # (3, 3) model -> camera, y up
    translation: np.ndarray  # (2,) pixels
    scale: float  # pixels per model unit
    shape_coeffs: np.ndarray  # (K_id,) standardised identity coefficients
    expression_coeffs: np.ndarray  # (K_exp,) standardised expression coefficients
    vertex_indices: np.ndarray  # (N,) the model vertices that were fitted
    points_2d: np.ndarray  # (N, 2) the input points
    residuals: np.ndarray  # (N, 2) points_2d - projected fitted landmarks
    model: MorphableModel = field(repr=False)

    @property
    def camera(self) -> Camera:
        return Camera(self.rotation, self.scale, self.translation)

    @property
    def pose(self) -> np.ndarray:
        """(pitch, yaw, roll) in degrees, in the convention of ``Face.pose`` (see :func:`rotation_to_pose`)."""
        return rotation_to_pose(self.rotation)

    @property
    def pitch(self) -> float:
        return float(self.pose[0])

    @property
    def yaw(self) -> float:
        return float(self.pose[1])

    @property
    def roll(self) -> float:
        return float(self.pose[2])

    @property
    def errors(self) -> np.ndarray:
        """(N,) reprojection error of each landmark, in pixels."""
        return np.linalg.norm(self.residuals, axis=1)

    @property
    def rms_error(self) -> float:
        """Root mean square landmark reprojection error, in pixels."""
        return float(np.sqrt(np.mean(np.sum(self.residuals**2, axis=1))))

    @functools.cached_property
    def vertices(self) -> np.ndarray:
        """(V, 3) the fitted dense shape in model coordinates (equation (1))."""
        return self.model.vertices(self.shape_coeffs, self.expression_coeffs)

    def image_vertices(self) -> np.ndarray:
        """(V, 3) the fitted mesh in the photo: x, y pixels, z pixels (larger = closer)."""
        return self.camera.to_image(self.vertices)


def rotation_to_pose(rotation: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees for a model-to-camera rotation of equation (2).

    Our rotation acts in a y-up frame; ``Face.pose`` (``faceops.landmarks``)
    is defined in the image frame (y down), where the same motion is
    ``D R D`` with ``D = diag(1, -1, 1)``. Its convention: pitch > 0 the face
    looks up, yaw > 0 it turns towards the image's right, roll > 0 it tilts
    clockwise in the image.
    """
    from faceops.landmarks import rotation_to_angles

    flip = np.diag([1.0, -1.0, 1.0])
    return rotation_to_angles(flip @ rotation @ flip).astype(np.float64)


def pose_to_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """The inverse of :func:`rotation_to_pose` (degrees in, model-to-camera rotation out).

    In the image frame the rotation is ``Rz(roll) Ry(yaw) Rx(pitch)`` (x-y-z
    Euler angles, the decomposition ``rotation_to_angles`` inverts).
    """
    p, y, r = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    flip = np.diag([1.0, -1.0, 1.0])
    return flip @ (rz @ ry @ rx) @ flip


def check_correspondences(model: MorphableModel, points_2d, vertex_indices) -> tuple[np.ndarray, np.ndarray]:
    """Validate the fitter's input; return (points (N, 2) float64, indices (N,) int64).

    Raises :class:`FittingError`, naming the offending count or rows, for:
    mismatched lengths, fewer than 4 points, non-finite coordinates, indices
    outside the model, and 2D points that are (nearly) collinear or model
    points that are (nearly) coplanar -- either leaves the camera undetermined.
    """
    points = np.asarray(points_2d, dtype=np.float64)
    indices = np.asarray(vertex_indices)
    if points.ndim != 2 or points.shape[1] != 2:
        raise FittingError(f"points_2d must be (N, 2); got shape {points.shape}")
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise FittingError(f"vertex_indices must be a 1-D integer array; got {indices.dtype} shape {indices.shape}")
    if len(points) != len(indices):
        raise FittingError(f"{len(points)} points but {len(indices)} vertex indices: they must correspond one to one")
    if len(points) < MIN_POINTS:
        raise FittingError(f"need at least {MIN_POINTS} points to fit a camera (8 unknowns); got {len(points)}")
    bad_rows = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if bad_rows.size:
        raise FittingError(f"points {bad_rows.tolist()} are not finite (NaN or inf): drop them and their indices")
    out_of_range = np.flatnonzero((indices < 0) | (indices >= model.n_vertices))
    if out_of_range.size:
        raise FittingError(f"vertex indices {indices[out_of_range].tolist()} (at positions {out_of_range.tolist()}) "
                           f"are outside {model.name}'s 0..{model.n_vertices - 1}")
    for label, pts, rank in (("2D points", points, 2), ("model vertices", model.mean[indices], 3)):
        spread = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
        if not spread[0] > 0 or spread[rank - 1] <= DEGENERACY_RATIO * spread[0]:
            shape = "collinear" if rank == 2 else "coplanar"
            raise FittingError(f"the {len(pts)} {label} are degenerate ({shape}; singular values "
                               f"{np.round(spread, 6).tolist()}): the camera is undetermined")
    return points, indices.astype(np.int64)


def fit_shape_and_pose(model: MorphableModel, points_2d, vertex_indices,
                       n_iterations: int = DEFAULT_ITERATIONS, shape_lambda: float = DEFAULT_SHAPE_LAMBDA,
                       expression_lambda: float = DEFAULT_EXPRESSION_LAMBDA) -> FitResult:
    """Fit pose, identity and expression to 2D points with known model vertices (the module's loop).

    ``points_2d`` (N, 2) pixels; ``vertex_indices`` (N,) the model vertex of
    each point (``model.landmark_vertices`` for 68 iBUG points, a subset of
    them, ``five_point_vertices(model)`` for detector key points...).
    ``shape_lambda`` / ``expression_lambda``: the ridge weights of
    :func:`fit_coefficients` (model units^2; 0 = unregularised).

    Each iteration: camera from the current 3D landmarks, then expression,
    then identity; the first camera is fitted to the mean face.
    """
    points, indices = check_correspondences(model, points_2d, vertex_indices)
    if n_iterations < 1:
        raise ValueError(f"n_iterations must be at least 1; got {n_iterations}")
    mean = model.mean[indices]
    shape_basis = model.shape_basis[indices]
    expression_basis = model.expression_basis[indices]
    c_id = np.zeros(model.n_shape)
    c_exp = np.zeros(model.n_expression)
    identity_part = np.zeros_like(mean)  # S_i c_id at the landmarks
    expression_part = np.zeros_like(mean)  # E_i c_exp at the landmarks

    for _ in range(n_iterations):
        camera = estimate_camera(points, mean + identity_part + expression_part)
        if model.n_expression:
            c_exp = fit_coefficients(camera, points, mean + identity_part, expression_basis, expression_lambda)
            expression_part = expression_basis @ c_exp
        if model.n_shape:
            c_id = fit_coefficients(camera, points, mean + expression_part, shape_basis, shape_lambda)
            identity_part = shape_basis @ c_id

    # The last coefficient update moved the landmarks: re-fit the camera so pose and shape agree.
    landmarks_3d = mean + identity_part + expression_part
    camera = estimate_camera(points, landmarks_3d)
    residuals = points - camera.project(landmarks_3d)
    return FitResult(rotation=camera.rotation, translation=camera.translation, scale=camera.scale,
                     shape_coeffs=c_id, expression_coeffs=c_exp, vertex_indices=indices, points_2d=points,
                     residuals=residuals, model=model)


def fit_landmarks_68(model: MorphableModel, landmarks_68, **kwargs) -> FitResult:
    """:func:`fit_shape_and_pose` on the 68 iBUG landmarks (68, 2) with the model's own landmark vertices."""
    landmarks_68 = np.asarray(landmarks_68, dtype=np.float64)
    if landmarks_68.shape[:1] != (68,) or model.landmark_vertices.size != 68:
        raise FittingError(f"need 68 points and a model with 68 landmark vertices; got {landmarks_68.shape} "
                           f"points and {model.landmark_vertices.size} landmark vertices")
    return fit_shape_and_pose(model, landmarks_68[:, :2], model.landmark_vertices, **kwargs)
