"""Saving a fitted face: per-vertex colour from the photo, Wavefront OBJ and PLY files.

Colour: each vertex takes the photo's colour where it projects (bilinear
sampling, :func:`bilinear_sample`), but only if it is *visible*: a z-buffer of the mesh in the photo
(``faceops.morphable.render.rasterize``) says which surface is in front at
each pixel, and a vertex more than ``depth_tolerance`` behind it (the far
cheek of a turned face) would pick up the wrong colour. Hidden vertices get
the mean colour of the visible ones.

Files hold the shape in model coordinates (millimetres for the BFM; x to
the image right, y up, z towards the viewer, the frontal face), with
triangles 1-based in OBJ (its convention) and 0-based in PLY. OBJ has no
official vertex colour; the widespread extension ``v x y z r g b`` (0..1)
is read by MeshLab and Blender. PLY is ASCII with ``red green blue``
uchar properties.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from faceops.morphable.render import mesh_arrays, rasterize

DEPTH_TOLERANCE_PX = 1.0


def visible_vertices(image_vertices: np.ndarray, triangles: np.ndarray, height: int, width: int,
                     depth_tolerance: float = DEPTH_TOLERANCE_PX) -> np.ndarray:
    """(V,) bool: the vertex lies inside the photo and on the front-most surface at its pixel."""
    _, depth = rasterize(image_vertices, triangles, np.zeros((len(image_vertices), 1)), height, width)
    cols = np.rint(image_vertices[:, 0]).astype(np.int64)
    rows = np.rint(image_vertices[:, 1]).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    visible = np.zeros(len(image_vertices), dtype=bool)
    front = depth[rows[inside], cols[inside]]
    visible[inside] = image_vertices[inside, 2] >= front - depth_tolerance
    return visible


def bilinear_sample(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, C) float colours of ``img`` (H, W, C) at points (x, y), bilinear, clamped at the border.

    The four pixels around a point are weighted by the areas of the opposite
    sub-rectangles: ``(1-fx)(1-fy)``, ``fx(1-fy)``, ``(1-fx)fy``, ``fx fy``.
    """
    height, width = img.shape[:2]
    x = np.clip(np.asarray(x, dtype=np.float64), 0, width - 1)
    y = np.clip(np.asarray(y, dtype=np.float64), 0, height - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), width - 2) if width > 1 else np.zeros(len(x), np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), height - 2) if height > 1 else np.zeros(len(y), np.int64)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = img.astype(np.float64)
    return ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x1]
            + (1 - fx) * fy * img[y1, x0] + fx * fy * img[y1, x1])


def sample_vertex_colours(img_bgr: np.ndarray, image_vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) uint8 RGB colour of each vertex from the photo (visible ones; hidden get the visible mean)."""
    height, width = img_bgr.shape[:2]
    rgb = bilinear_sample(img_bgr, image_vertices[:, 0], image_vertices[:, 1])[:, ::-1]
    visible = visible_vertices(image_vertices, triangles, height, width)
    if visible.any():
        rgb[~visible] = rgb[visible].mean(axis=0)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _check(vertices, triangles, colours):
    vertices, triangles = mesh_arrays(vertices, triangles)
    if colours is not None:
        colours = np.asarray(colours)
        if colours.shape != vertices.shape:
            raise ValueError(f"colours must be (V, 3) uint8 RGB like the vertices {vertices.shape}; "
                             f"got {colours.shape}")
    return vertices, triangles, colours


def write_obj(path: str | os.PathLike, vertices, triangles, colours=None) -> Path:
    """Write a Wavefront OBJ: ``v x y z [r g b]`` lines (colour 0..1), then ``f a b c`` (1-based)."""
    vertices, triangles, colours = _check(vertices, triangles, colours)
    path = Path(path)
    if colours is None:
        v_lines = [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices]
    else:
        c = colours.astype(np.float64) / 255.0
        v_lines = [f"v {x:.4f} {y:.4f} {z:.4f} {r:.4f} {g:.4f} {b:.4f}"
                   for (x, y, z), (r, g, b) in zip(vertices, c)]
    f_lines = [f"f {a} {b} {c}" for a, b, c in triangles + 1]
    path.write_text("# faceops 3D face reconstruction\n" + "\n".join(v_lines + f_lines) + "\n")
    return path


def write_ply(path: str | os.PathLike, vertices, triangles, colours=None) -> Path:
    """Write an ASCII PLY with optional per-vertex ``red green blue`` (uchar) and 0-based faces."""
    vertices, triangles, colours = _check(vertices, triangles, colours)
    path = Path(path)
    header = ["ply", "format ascii 1.0", "comment faceops 3D face reconstruction", f"element vertex {len(vertices)}",
              "property float x", "property float y", "property float z"]
    if colours is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(triangles)}", "property list uchar int vertex_indices", "end_header"]
    if colours is None:
        v_lines = [f"{x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices]
    else:
        v_lines = [f"{x:.4f} {y:.4f} {z:.4f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(vertices, colours)]
    f_lines = [f"3 {a} {b} {c}" for a, b, c in triangles]
    path.write_text("\n".join(header + v_lines + f_lines) + "\n")
    return path


def write_mesh(path: str | os.PathLike, vertices, triangles, colours=None) -> Path:
    """:func:`write_obj` or :func:`write_ply`, by the file's suffix (.obj or .ply)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".obj":
        return write_obj(path, vertices, triangles, colours)
    if suffix == ".ply":
        return write_ply(path, vertices, triangles, colours)
    raise ValueError(f"{path}: unknown mesh format {suffix!r}; use .obj or .ply")


def read_obj(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read back what :func:`write_obj` writes: (vertices, 0-based triangles, RGB uint8 colours or None)."""
    rows, faces = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("v "):
            rows.append([float(v) for v in line.split()[1:]])
        elif line.startswith("f "):
            faces.append([int(v.split("/")[0]) - 1 for v in line.split()[1:4]])
    data = np.array(rows)
    colours = np.rint(data[:, 3:6] * 255).astype(np.uint8) if data.shape[1] >= 6 else None
    return data[:, :3], np.array(faces, dtype=np.int64).reshape(-1, 3), colours
