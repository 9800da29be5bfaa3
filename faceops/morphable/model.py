"""A linear 3D morphable model (3DMM): a mean face plus identity and expression bases.

Every face shape the model can express is

    X(c_id, c_exp) = mean + S @ c_id + E @ c_exp                     (1)

with ``X``, ``mean`` of shape (V, 3) (V vertices, x y z in millimetres),
``S`` the identity (shape) basis (V, 3, K_id) and ``E`` the expression basis
(V, 3, K_exp). The coefficients are **standardised**: a priori each is
N(0, 1), so ``|c|^2`` measures how unusual a face is and is what the
fitter's regulariser penalises (``faceops.morphable.fitting``).

The Basel Face Model as 3DDFA_V2 uses it (``load_bfm``)
-------------------------------------------------------
``bfm_noneck_v3`` holds ``u`` (the mean shape, flattened x0 y0 z0 x1 ...,
38,365 vertices, in micrometres), ``w_shp`` (40 identity components) and
``w_exp`` (10 expression components), and ``keypoints``: 204 indices into
the *flattened* array (x, y, z rows of the 68 landmarks), so the landmark
vertices are ``keypoints[::3] // 3``.

The basis columns are **not** scaled by the square roots of the PCA
eigenvalues: 3DDFA's raw parameters ``alpha`` have wildly different scales
(identity ~1e5, expression ~1). What makes them comparable is 3DDFA_V2's
``param_mean_std`` file: the mean ``m`` and standard deviation ``sd`` of
each parameter over its training set (300W-LP fits). We use that as the
prior and re-express the model in standardised coefficients
``c = (alpha - m) / sd``:

    mean = (u + W_shp m_shp + W_exp m_exp) / 1000       (average training face, mm)
    S    = W_shp diag(sd_shp) / 1000,   E = W_exp diag(sd_exp) / 1000

This is exactly eos' form (a basis scaled by its standard deviations), and
``c`` is exactly what 3DDFA_V2's network outputs *before* its own
de-normalisation ``p * std + mean``, so our fitted coefficients and the
network's predictions are directly comparable (``faceops.morphable.tddfa``).

Triangles
---------
The ``tri`` array in the pickle indexes the full BFM (indices up to 46,851),
not these 38,365 vertices, and 3DDFA_V2's own ``tri.pkl`` for this model is
in no pinned wheel. So ``load_bfm`` builds its own triangulation
(:func:`triangulate_front_surface`): the face is a surface seen from the
front, so projecting its vertices onto a sphere around a point behind it
(azimuth, elevation) flattens it without folds, a 2D Delaunay triangulation
of those angles connects neighbours, and triangles with an edge much longer
than the mesh spacing (Delaunay fills the concave outline) are dropped.

The BFM is for non-commercial research only (University of Basel licence);
``faceops.weights`` says so when it fetches it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

MICROMETRES_PER_MM = 1000.0
N_ID_3DDFA = 40
N_EXP_3DDFA = 10
TDDFA_POSE_PARAMS = 12  # the 62 parameters are 12 pose + 40 identity + 10 expression

# Triangles whose longest edge exceeds this multiple of the median longest
# edge are outline fill, not face (see triangulate_front_surface).
LONG_EDGE_FACTOR = 4.0

# The 68-point convention (iBUG 300-W), 0-based: which landmarks make up what.
JAW = range(0, 17)
RIGHT_EYE_68 = range(36, 42)  # the person's right eye: the image-left eye of a frontal face
LEFT_EYE_68 = range(42, 48)
NOSE_TIP_68 = 30
MOUTH_RIGHT_68 = 48  # image-left mouth corner
MOUTH_LEFT_68 = 54


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A linear 3DMM, equation (1) of the module docstring.

    Attributes
    ----------
    mean : (V, 3) float64, the mean shape (mm for the BFM; any unit works).
    shape_basis : (V, 3, K_id) identity basis, one column per standardised coefficient.
    expression_basis : (V, 3, K_exp) expression basis (K_exp may be 0).
    triangles : (T, 3) int vertex indices, counter-clockwise seen from outside
        (front); may be empty for a landmark-only model.
    landmark_vertices : (68,) vertex index of each iBUG-68 landmark (or empty).
    name : a label for messages.

    Coordinates: x to the face's left as seen by a viewer (image right), y up,
    z out of the face towards a viewer in front of it (right-handed).
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    expression_basis: np.ndarray
    triangles: np.ndarray
    landmark_vertices: np.ndarray
    name: str = "morphable model"

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float64)
        if mean.ndim != 2 or mean.shape[1] != 3:
            raise ValueError(f"{self.name}: mean must be (V, 3); got {mean.shape}")
        n_vertices = mean.shape[0]
        for label in ("shape_basis", "expression_basis"):
            basis = np.asarray(getattr(self, label), dtype=np.float64)
            if basis.ndim != 3 or basis.shape[:2] != (n_vertices, 3):
                raise ValueError(f"{self.name}: {label} must be ({n_vertices}, 3, K); got {basis.shape}")
            object.__setattr__(self, label, basis)
        triangles = np.asarray(self.triangles, dtype=np.int64).reshape(-1, 3)
        landmarks = np.asarray(self.landmark_vertices, dtype=np.int64).reshape(-1)
        for label, idx in (("triangles", triangles), ("landmark_vertices", landmarks)):
            if idx.size and (idx.min() < 0 or idx.max() >= n_vertices):
                raise ValueError(f"{self.name}: {label} index {int(idx.max())} or {int(idx.min())} "
                                 f"outside 0..{n_vertices - 1}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "triangles", triangles)
        object.__setattr__(self, "landmark_vertices", landmarks)

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def n_shape(self) -> int:
        return self.shape_basis.shape[2]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[2]

    def vertices(self, shape_coeffs=None, expression_coeffs=None, indices=None) -> np.ndarray:
        """Equation (1): the (V, 3) shape for the given standardised coefficients.

        Missing coefficients are zero (the mean face). ``indices`` restricts
        the result to those vertices (cheap: only their rows of the bases are
        touched), e.g. ``model.landmark_vertices``.
        """
        mean, shape_basis, expression_basis = self.mean, self.shape_basis, self.expression_basis
        if indices is not None:
            indices = np.asarray(indices, dtype=np.int64)
            mean, shape_basis, expression_basis = mean[indices], shape_basis[indices], expression_basis[indices]
        out = mean.copy()
        if shape_coeffs is not None:
            out += shape_basis @ self._check_coeffs(shape_coeffs, self.n_shape, "shape_coeffs")
        if expression_coeffs is not None and self.n_expression:
            out += expression_basis @ self._check_coeffs(expression_coeffs, self.n_expression, "expression_coeffs")
        return out

    def _check_coeffs(self, coeffs, expected: int, label: str) -> np.ndarray:
        coeffs = np.asarray(coeffs, dtype=np.float64).reshape(-1)
        if coeffs.size != expected:
            raise ValueError(f"{self.name}: {label} has {coeffs.size} values; the model has {expected}")
        return coeffs


def triangulate_front_surface(points: np.ndarray, long_edge_factor: float = LONG_EDGE_FACTOR) -> np.ndarray:
    """Triangles (T, 3) for a surface seen from +z, such as a face without the back of the head.

    1. centre = (mean x, mean y, min z): a point behind the surface;
    2. each vertex -> (azimuth, elevation) seen from that centre:
       ``atan2(x, z)`` and ``atan2(y, hypot(x, z))`` (relative to the centre).
       Unlike a flat (x, y) projection this does not fold the steep cheeks
       and the underside of the chin onto the front;
    3. 2D Delaunay triangulation of those angles (``scipy.spatial.Delaunay``);
    4. drop triangles whose longest 3D edge is over ``long_edge_factor`` x the
       median longest edge: Delaunay covers the convex hull, so it bridges
       the concave parts of the outline with long thin triangles;
    5. orient every triangle counter-clockwise seen from outside (its normal
       points away from the centre), which shading needs.
    """
    from scipy.spatial import Delaunay

    points = np.asarray(points, dtype=np.float64)
    centre = np.array([points[:, 0].mean(), points[:, 1].mean(), points[:, 2].min()])
    rel = points - centre
    azimuth = np.arctan2(rel[:, 0], rel[:, 2])
    elevation = np.arctan2(rel[:, 1], np.hypot(rel[:, 0], rel[:, 2]))
    triangles = Delaunay(np.column_stack([azimuth, elevation])).simplices.astype(np.int64)

    a, b, c = (points[triangles[:, k]] for k in range(3))
    longest = np.max([np.linalg.norm(a - b, axis=1), np.linalg.norm(b - c, axis=1),
                      np.linalg.norm(c - a, axis=1)], axis=0)
    keep = longest <= long_edge_factor * np.median(longest)
    triangles, a, b, c = triangles[keep], a[keep], b[keep], c[keep]

    normals = np.cross(b - a, c - a)
    outward = np.einsum("ij,ij->i", normals, (a + b + c) / 3.0 - centre) > 0
    triangles[~outward] = triangles[~outward][:, [0, 2, 1]]
    log.debug("triangulated %d vertices: %d triangles kept, %d outline triangles dropped",
              len(points), int(keep.sum()), int((~keep).sum()))
    return triangles


def nearest_vertex(points: np.ndarray, target: np.ndarray) -> int:
    """Index of the row of ``points`` (V, 3) closest to ``target`` (3,)."""
    return int(np.argmin(np.linalg.norm(points - target, axis=1)))


def five_point_vertices(model: MorphableModel) -> np.ndarray:
    """Vertex indices for a detector's 5 key points (``Face.kps`` order).

    ``Face.kps`` are: image-left eye centre, image-right eye centre, nose tip,
    image-left and image-right mouth corner. The eye centres are the mean-shape
    vertices nearest to the centroid of each eye's six 68-point landmarks;
    the others are 68-point landmarks 30, 48 and 54.
    """
    if model.landmark_vertices.size != 68:
        raise ValueError(f"{model.name} has no 68 landmark vertices; cannot place the 5 detector key points")
    landmarks = model.mean[model.landmark_vertices]
    eyes = [nearest_vertex(model.mean, landmarks[list(eye)].mean(axis=0)) for eye in (RIGHT_EYE_68, LEFT_EYE_68)]
    return np.array([eyes[0], eyes[1], model.landmark_vertices[NOSE_TIP_68],
                     model.landmark_vertices[MOUTH_RIGHT_68], model.landmark_vertices[MOUTH_LEFT_68]], dtype=np.int64)


def bfm_from_arrays(u, w_shp, w_exp, keypoints, param_mean, param_std, name: str = "bfm_noneck_v3") -> MorphableModel:
    """Build the standardised model of the module docstring from 3DDFA_V2's raw arrays.

    ``u`` (3V,1), ``w_shp`` (3V,K_id), ``w_exp`` (3V,K_exp) in micrometres,
    flattened x0 y0 z0 x1 ...; ``keypoints`` flattened-coordinate indices;
    ``param_mean`` / ``param_std`` the 62-vector of 3DDFA_V2 (12 pose first).
    """
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    w_shp = np.asarray(w_shp, dtype=np.float64)
    w_exp = np.asarray(w_exp, dtype=np.float64)
    n_id, n_exp = w_shp.shape[1], w_exp.shape[1]
    sl_id = slice(TDDFA_POSE_PARAMS, TDDFA_POSE_PARAMS + n_id)
    sl_exp = slice(TDDFA_POSE_PARAMS + n_id, TDDFA_POSE_PARAMS + n_id + n_exp)
    param_mean = np.asarray(param_mean, dtype=np.float64)
    param_std = np.asarray(param_std, dtype=np.float64)
    if param_mean.size != TDDFA_POSE_PARAMS + n_id + n_exp:
        raise ValueError(f"param mean has {param_mean.size} values; expected 12 + {n_id} + {n_exp}")
    # Flattened x0 y0 z0 x1 ... -> (V, 3): row-major reshape (3DDFA's reshape(3, -1, order='F') transposed).
    mean = (u + w_shp @ param_mean[sl_id] + w_exp @ param_mean[sl_exp]).reshape(-1, 3) / MICROMETRES_PER_MM
    shape_basis = (w_shp * param_std[sl_id]).reshape(-1, 3, n_id) / MICROMETRES_PER_MM
    expression_basis = (w_exp * param_std[sl_exp]).reshape(-1, 3, n_exp) / MICROMETRES_PER_MM
    keypoints = np.asarray(keypoints, dtype=np.int64).reshape(-1)
    if keypoints.size % 3 or np.any(keypoints[::3] % 3) or np.any(keypoints[1::3] != keypoints[::3] + 1):
        raise ValueError("keypoints must be flattened-coordinate triples (3v, 3v+1, 3v+2)")
    # One quirk of the file: landmark 44's z row is 36263 (vertex 12087's z), not 37151 (12383's); both
    # have the same mean depth. 3DDFA's sparse landmarks inherit the mix; we use the x/y vertex throughout.
    odd_z = np.flatnonzero(keypoints[2::3] != keypoints[::3] + 2)
    if odd_z.size:
        log.debug("keypoints %s: z row is not that of the x/y vertex; using the x/y vertex", odd_z.tolist())
    return MorphableModel(mean=mean, shape_basis=shape_basis, expression_basis=expression_basis,
                          triangles=triangulate_front_surface(mean), landmark_vertices=keypoints[::3] // 3,
                          name=name)


@functools.lru_cache(maxsize=1)
def load_bfm() -> MorphableModel:
    """The BFM of 3DDFA_V2 (38,365 vertices, 40 identity + 10 expression), standardised, in mm.

    Fetches ``bfm_noneck_v3`` and ``3ddfa_param_mean_std`` through
    ``faceops.weights`` on first use (non-commercial research licence) and
    builds the model once per process (about a second: the bases are
    rescaled and the mesh triangulated).
    """
    from faceops import weights

    with np.load(weights.model_path("bfm_noneck_v3"), allow_pickle=False) as bfm, \
            np.load(weights.model_path("3ddfa_param_mean_std"), allow_pickle=False) as stats:
        return bfm_from_arrays(bfm["u"], bfm["w_shp"], bfm["w_exp"], bfm["keypoints"], stats["mean"], stats["std"])


def random_model(n_vertices: int = 200, n_shape: int = 8, n_expression: int = 4, seed: int = 0,
                 shape_scale: float = 5.0, expression_scale: float = 2.0) -> MorphableModel:
    """A synthetic face-like model for tests and benchmarks: any linear basis works with the fitter.

    The mean is a half ellipsoid of 100 x 140 x 60 (mm-like units) facing +z;
    bases are Gaussian with per-vertex standard deviation ``shape_scale`` /
    ``expression_scale`` divided by sqrt(K), so one unit coefficient moves a
    vertex by about that much. The first 68 vertices (or all, if fewer) are
    its "landmarks".
    """
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-1.2, 1.2, n_vertices)  # azimuth
    phi = rng.uniform(-1.1, 1.1, n_vertices)  # elevation
    mean = np.column_stack([50.0 * np.sin(theta) * np.cos(phi), 70.0 * np.sin(phi),
                            60.0 * np.cos(theta) * np.cos(phi)])
    shape_basis = rng.normal(0.0, shape_scale / np.sqrt(max(n_shape, 1)), (n_vertices, 3, n_shape))
    expression_basis = rng.normal(0.0, expression_scale / np.sqrt(max(n_expression, 1)),
                                  (n_vertices, 3, n_expression))
    return MorphableModel(mean=mean, shape_basis=shape_basis, expression_basis=expression_basis,
                          triangles=triangulate_front_surface(mean),
                          landmark_vertices=np.arange(min(68, n_vertices)), name=f"random model (seed {seed})")
