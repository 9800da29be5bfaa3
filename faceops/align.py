"""Face alignment: map five detected keypoints onto the ArcFace template.

Recognition models are trained on faces cut out the same way every time: the
eyes, nose tip and mouth corners land on fixed pixels of a 112x112 crop (the
"ArcFace template"). Alignment finds the similarity transform (rotation,
uniform scale, translation; never a reflection, never a shear) that moves the
detector's five keypoints as close as possible, in the least-squares sense,
onto those template points, and warps the image with it.

The transform is Umeyama's closed form (S. Umeyama, "Least-squares estimation
of transformation parameters between two point patterns", IEEE PAMI 13(4),
1991), written out in NumPy below; InsightFace gets the same numbers from
scikit-image's ``SimilarityTransform.estimate``.
"""

from __future__ import annotations

import cv2
import numpy as np

# Where the 5 keypoints sit in a 112x112 ArcFace crop (x, y): left eye, right
# eye, nose tip, left mouth corner, right mouth corner (image left/right).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity transform that best maps points ``src`` onto ``dst``.

    Minimises ``sum_i |dst_i - (c R src_i + t)|^2`` over a rotation ``R``
    (det +1), a scale ``c > 0`` and a translation ``t``. Returns the 3x3
    homogeneous matrix ``[[c R, t], [0, 1]]`` (float64).

    The recipe (Umeyama 1991, eqs. 38-42): centre both point sets; take the
    SVD ``U D V^T`` of their cross-covariance ``Sigma = dst_c^T src_c / n``;
    the rotation is ``U S V^T`` where ``S`` flips the last axis when
    ``det(Sigma) < 0`` (the best orthogonal map would be a reflection, and we
    refuse reflections); the scale is ``trace(D S) / var(src)``; the
    translation moves the scaled, rotated source mean onto the target mean.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(
            f"umeyama needs two (N, D) point sets of the same shape with N >= 2; got {src.shape} and {dst.shape}"
        )
    n, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / n
    if src_var <= 1e-12:
        raise ValueError("umeyama: the source points all coincide; no transform is defined")

    sigma = dst_c.T @ src_c / n
    u, d, vt = np.linalg.svd(sigma)
    s = np.ones(dim)
    if np.linalg.det(sigma) < 0:
        s[-1] = -1.0
    rank = np.linalg.matrix_rank(sigma)
    if rank == dim - 1:
        # Sigma is singular (e.g. collinear points): det(Sigma) says nothing,
        # so choose the sign that makes U S V^T a proper rotation.
        s[-1] = 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0
    rotation = u @ np.diag(s) @ vt
    scale = float(d @ s) / src_var

    matrix = np.eye(dim + 1)
    matrix[:dim, :dim] = scale * rotation
    matrix[:dim, dim] = dst_mean - scale * rotation @ src_mean
    return matrix


def arcface_template(size: int = 112) -> np.ndarray:
    """The template for a ``size`` x ``size`` crop (InsightFace's convention).

    Sizes that are multiples of 112 scale the 112 template; multiples of 128
    scale it by size/128 and shift x right by 8*size/128 (the 112 face centred
    in a 128 crop).
    """
    if size % 112 == 0:
        ratio, shift_x = size / 112.0, 0.0
    elif size % 128 == 0:
        ratio = size / 128.0
        shift_x = 8.0 * ratio
    else:
        raise ValueError(f"alignment crop size must be a multiple of 112 or 128; got {size}")
    template = ARCFACE_TEMPLATE * ratio
    template[:, 0] += shift_x
    return template


def estimate_norm(kps: np.ndarray, size: int = 112) -> np.ndarray:
    """The 2x3 affine matrix (float64) taking image pixels to the aligned ``size`` crop."""
    kps = np.asarray(kps, dtype=np.float64)
    if kps.shape != (5, 2):
        raise ValueError(f"estimate_norm needs 5 keypoints of shape (5, 2); got {kps.shape}")
    return umeyama(kps, arcface_template(size))[:2]


def norm_crop(img: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """The aligned ``size`` x ``size`` face crop (same channels and dtype as ``img``).

    Bilinear warp; pixels that fall outside the image are black (0), as in
    InsightFace.
    """
    matrix = estimate_norm(kps, size)
    return cv2.warpAffine(img, matrix, (size, size), borderValue=0.0)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 (or 3x3) affine ``matrix`` to (N, 2) points (extra columns, e.g. z, pass through)."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)[:2]
    out = points.copy()
    out[:, :2] = points[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    return out


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix, as a 2x3 matrix (maps crop pixels back to the image)."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64)[:2])
