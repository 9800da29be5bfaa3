"""Drawing a mesh: Lambert shading, a z-buffered triangle rasteriser, overlays and side views.

Rasterising, in one paragraph: for each triangle, look at the pixels of its
bounding box; a pixel centre ``p`` is inside when its three *barycentric
coordinates* ``(l0, l1, l2)`` -- the signed areas of the sub-triangles
``p v1 v2``, ``v0 p v2``, ``v0 v1 p`` divided by the triangle's area -- are
all >= 0. They also interpolate anything given at the corners:
depth ``z = l0 z0 + l1 z1 + l2 z2`` and colour likewise. The **z-buffer**
keeps, per pixel, the depth of the nearest surface drawn so far; a new
fragment is drawn only if it is nearer (larger z: z points at the viewer),
so the triangle order does not matter (except for exact ties, where the
first one drawn wins).

Two implementations with one signature and one test
(``tests/test_morphable_render.py``): :func:`rasterize_reference`, NumPy
vectorised over each triangle's box (readable, fine for tiny meshes), and
:func:`rasterize` (Numba, one loop nest, what everything uses; compiled on
first call and cached on disk).

Shading is Lambertian: vertex normals are the area-weighted sums of the
normals of the triangles around each vertex (the cross product's length is
twice the area, so summing raw cross products weights by area), and a
vertex' brightness is ``ambient + diffuse * max(0, n . light)``.

Coordinates: image pixels, x right, y down, z larger = closer (what
``FitResult.image_vertices`` gives). Pixel (row i, column j) has its centre at
(x, y) = (j, i).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from faceops.morphable.fitting import pose_to_rotation

DEFAULT_LIGHT = (0.3, -0.4, 1.0)  # towards the viewer, from the upper right (image y is down)
AMBIENT = 0.35
DIFFUSE = 0.65
MESH_COLOUR_BGR = (200.0, 210.0, 225.0)  # a light grey-beige


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: area-weighted average of the adjacent triangles' normals."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)  # length = 2 x area: the weighting comes for free
    # Scatter-add each triangle's normal to its three corners (bincount: a fast unbuffered np.add.at).
    normals = np.zeros((len(vertices), 3))
    for k in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(triangles[:, k], weights=face_normals[:, axis], minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


def lambert(vertices: np.ndarray, triangles: np.ndarray, light=DEFAULT_LIGHT,
            ambient: float = AMBIENT, diffuse: float = DIFFUSE) -> np.ndarray:
    """(V,) brightness ``ambient + diffuse * max(0, n . l)`` of each vertex.

    ``vertices`` in image coordinates (x right, y down, z towards the viewer).
    In that frame the cross product of a triangle that is counter-clockwise
    seen from outside points *away* from the viewer (the y flip mirrors
    handedness), so the normals are negated to face outwards.
    """
    light = np.asarray(light, dtype=np.float64)
    light = light / np.linalg.norm(light)
    normals = -vertex_normals(vertices, triangles)
    return ambient + diffuse * np.clip(normals @ light, 0.0, None)


def mesh_arrays(vertices, triangles) -> tuple[np.ndarray, np.ndarray]:
    """``vertices`` as contiguous float64 (V, 3) and ``triangles`` as int64 (T, 3), or a ValueError naming the shape."""
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    triangles = np.ascontiguousarray(triangles, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3); got {vertices.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise ValueError(f"triangles must be (T, 3); got {triangles.shape}")
    return vertices, triangles


def _check_mesh(vertices, triangles, colours, height, width):
    vertices, triangles = mesh_arrays(vertices, triangles)
    colours = np.ascontiguousarray(colours, dtype=np.float64)
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise ValueError(f"triangle indices must lie in 0..{len(vertices) - 1}")
    if colours.ndim != 2 or colours.shape[0] != len(vertices):
        raise ValueError(f"colours must be (V, C) with V = {len(vertices)}; got {colours.shape}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive; got {height}x{width}")
    return vertices, triangles, colours


def rasterize_reference(vertices, triangles, colours, height: int, width: int):
    """Z-buffered rasterisation in NumPy: (image (H, W, C), depth (H, W), -inf where empty).

    ``colours`` (V, C) are interpolated across each triangle. One triangle at
    a time, vectorised over the pixels of its bounding box; a readable
    reference for :func:`rasterize`, slow for big meshes.
    """
    vertices, triangles, colours = _check_mesh(vertices, triangles, colours, height, width)
    image = np.zeros((height, width, colours.shape[1]))
    depth = np.full((height, width), -np.inf)
    for tri in triangles:
        (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = vertices[tri]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)  # twice the signed area
        if area == 0.0:
            continue  # seen edge-on: covers no pixel centre reliably
        left, right = max(int(np.ceil(min(x0, x1, x2))), 0), min(int(np.floor(max(x0, x1, x2))), width - 1)
        top, bottom = max(int(np.ceil(min(y0, y1, y2))), 0), min(int(np.floor(max(y0, y1, y2))), height - 1)
        if left > right or top > bottom:
            continue
        ys, xs = np.mgrid[top:bottom + 1, left:right + 1].astype(np.float64)
        l0 = ((x1 - xs) * (y2 - ys) - (x2 - xs) * (y1 - ys)) / area
        l1 = ((x2 - xs) * (y0 - ys) - (x0 - xs) * (y2 - ys)) / area
        l2 = 1.0 - l0 - l1
        z = l0 * z0 + l1 * z1 + l2 * z2
        window = depth[top:bottom + 1, left:right + 1]
        draw = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (z > window)
        window[draw] = z[draw]
        lam = np.stack([l0[draw], l1[draw], l2[draw]], axis=1)  # (P, 3)
        image[top:bottom + 1, left:right + 1][draw] = lam @ colours[tri]
    return image, depth


@njit(cache=True, nogil=True)
def _rasterize_kernel(vertices, triangles, colours, image, depth):
    """The loop nest of :func:`rasterize`: same arithmetic as the reference, pixel by pixel."""
    height, width = depth.shape
    n_channels = colours.shape[1]
    for t in range(triangles.shape[0]):
        i0, i1, i2 = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        x0, y0, z0 = vertices[i0, 0], vertices[i0, 1], vertices[i0, 2]
        x1, y1, z1 = vertices[i1, 0], vertices[i1, 1], vertices[i1, 2]
        x2, y2, z2 = vertices[i2, 0], vertices[i2, 1], vertices[i2, 2]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0:
            continue
        left = max(int(np.ceil(min(x0, x1, x2))), 0)
        right = min(int(np.floor(max(x0, x1, x2))), width - 1)
        top = max(int(np.ceil(min(y0, y1, y2))), 0)
        bottom = min(int(np.floor(max(y0, y1, y2))), height - 1)
        for i in range(top, bottom + 1):
            ys = float(i)
            for j in range(left, right + 1):
                xs = float(j)
                l0 = ((x1 - xs) * (y2 - ys) - (x2 - xs) * (y1 - ys)) / area
                l1 = ((x2 - xs) * (y0 - ys) - (x0 - xs) * (y2 - ys)) / area
                l2 = 1.0 - l0 - l1
                if l0 < 0.0 or l1 < 0.0 or l2 < 0.0:
                    continue
                z = l0 * z0 + l1 * z1 + l2 * z2
                if z > depth[i, j]:
                    depth[i, j] = z
                    for c in range(n_channels):
                        image[i, j, c] = l0 * colours[i0, c] + l1 * colours[i1, c] + l2 * colours[i2, c]


def rasterize(vertices, triangles, colours, height: int, width: int):
    """Z-buffered rasterisation (Numba): same contract and results as :func:`rasterize_reference`."""
    vertices, triangles, colours = _check_mesh(vertices, triangles, colours, height, width)
    image = np.zeros((height, width, colours.shape[1]))
    depth = np.full((height, width), -np.inf)
    _rasterize_kernel(vertices, triangles, colours, image, depth)
    return image, depth


def shaded_colours(vertices: np.ndarray, triangles: np.ndarray, base_bgr=MESH_COLOUR_BGR,
                   light=DEFAULT_LIGHT) -> np.ndarray:
    """(V, 3) BGR colours of a uniformly coloured mesh under Lambert shading."""
    return lambert(vertices, triangles, light)[:, None] * np.asarray(base_bgr, dtype=np.float64)


def render_overlay(img_bgr: np.ndarray, meshes, alpha: float = 0.7) -> np.ndarray:
    """The photo with each mesh in ``meshes`` ((image vertices, triangles) pairs) drawn shaded on top.

    All meshes share one z-buffer (so overlapping faces occlude correctly);
    ``alpha`` is the mesh's opacity.
    """
    height, width = img_bgr.shape[:2]
    meshes = list(meshes)
    if not meshes:
        return img_bgr.copy()
    # One combined mesh: offset each mesh's triangle indices past the previous meshes' vertices.
    offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
    vertices = np.concatenate([v for v, _ in meshes])
    triangles = np.concatenate([t + o for (_, t), o in zip(meshes, offsets)])
    colours = np.concatenate([shaded_colours(v, t) for v, t in meshes])
    image, depth = rasterize(vertices, triangles, colours, height, width)
    covered = np.isfinite(depth)[..., None]
    blended = np.where(covered, (1 - alpha) * img_bgr + alpha * image, img_bgr)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def render_view(vertices_model: np.ndarray, triangles: np.ndarray, rotation: np.ndarray | None = None,
                yaw: float = 0.0, size: int = 256, colours=None, margin: float = 0.05) -> np.ndarray:
    """A ``size`` x ``size`` BGR picture of a model-space mesh (y up), turned by ``yaw`` degrees.

    ``rotation`` (e.g. ``FitResult.rotation``) is applied first, then an
    extra turn about the vertical axis: ``yaw=90`` turns the face to look
    towards the image's right, a side view. The mesh is scaled to fill the
    picture; ``colours`` (V, 3) BGR 0..255 (then shaded), else shaded grey.
    """
    turn = pose_to_rotation(0.0, yaw, 0.0)
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    rotated = vertices_model @ (turn @ rotation).T
    image_pts = np.column_stack([rotated[:, 0], -rotated[:, 1], rotated[:, 2]])  # y down for the image
    lo, hi = image_pts[:, :2].min(axis=0), image_pts[:, :2].max(axis=0)
    scale = (1 - 2 * margin) * size / max(float((hi - lo).max()), 1e-12)
    image_pts[:, :2] = (image_pts[:, :2] - (lo + hi) / 2) * scale + (size - 1) / 2
    image_pts[:, 2] *= scale
    if colours is None:
        colours = shaded_colours(image_pts, triangles)
    else:
        colours = np.asarray(colours, dtype=np.float64) * lambert(image_pts, triangles)[:, None]
    image, depth = rasterize(image_pts, triangles, colours, size, size)
    background = np.full_like(image, 40.0)
    return np.clip(np.where(np.isfinite(depth)[..., None], image, background) + 0.5, 0, 255).astype(np.uint8)
