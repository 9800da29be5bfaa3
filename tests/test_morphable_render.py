"""The rasterisers (NumPy reference vs Numba), shading, colour sampling and OBJ/PLY export.

Tolerances: the two rasterisers do the same float64 arithmetic in the same
order, so coverage and depth must agree exactly and colours to 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceops.morphable import random_model
from faceops.morphable.export import (
    bilinear_sample,
    read_obj,
    sample_vertex_colours,
    visible_vertices,
    write_mesh,
    write_obj,
    write_ply,
)
from faceops.morphable.render import (
    lambert,
    rasterize,
    rasterize_reference,
    render_overlay,
    render_view,
    vertex_normals,
)


def random_mesh(seed: int, n_vertices: int = 12, n_triangles: int = 10, size: int = 24):
    rng = np.random.default_rng(seed)
    vertices = np.column_stack([rng.uniform(-4, size + 4, (n_vertices, 2)), rng.uniform(-10, 10, n_vertices)])
    triangles = rng.integers(0, n_vertices, (n_triangles, 3))
    colours = rng.uniform(0, 255, (n_vertices, 3))
    return vertices, triangles, colours


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_numba_rasterizer_matches_reference(seed):
    vertices, triangles, colours = random_mesh(seed)
    ref_image, ref_depth = rasterize_reference(vertices, triangles, colours, 20, 24)
    image, depth = rasterize(vertices, triangles, colours, 20, 24)
    np.testing.assert_array_equal(np.isfinite(depth), np.isfinite(ref_depth))
    np.testing.assert_array_equal(depth, ref_depth)
    np.testing.assert_allclose(image, ref_image, rtol=0, atol=1e-9)


@pytest.mark.parametrize("raster", [rasterize_reference, rasterize])
def test_single_triangle_coverage_and_interpolation(raster):
    """Right triangle (0,0), (4,0), (0,4): covers the 15 pixel centres with x + y <= 4."""
    vertices = np.array([[0.0, 0.0, 1.0], [4.0, 0.0, 5.0], [0.0, 4.0, 9.0]])
    colours = np.array([[0.0], [40.0], [80.0]])
    image, depth = raster(vertices, np.array([[0, 1, 2]]), colours, 6, 6)
    covered = np.isfinite(depth)
    ys, xs = np.mgrid[:6, :6]
    np.testing.assert_array_equal(covered, xs + ys <= 4)
    np.testing.assert_allclose(depth[covered], (1 + xs + 2 * ys)[covered], atol=1e-12)  # z = 1 + x + 2y
    np.testing.assert_allclose(image[..., 0][covered], (10 * xs + 20 * ys)[covered], atol=1e-12)


@pytest.mark.parametrize("raster", [rasterize_reference, rasterize])
def test_z_buffer_keeps_the_nearest_surface_in_any_order(raster):
    square = np.array([[0, 0], [9, 0], [9, 9], [0, 9]], dtype=np.float64)
    near = np.column_stack([square, np.full(4, 5.0)])
    far = np.column_stack([square, np.full(4, -5.0)])
    vertices = np.vstack([near, far])
    colours = np.vstack([np.full((4, 1), 1.0), np.full((4, 1), 2.0)])
    quads = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    for order in (quads, quads[::-1]):
        image, depth = raster(vertices, order, colours, 10, 10)
        np.testing.assert_allclose(image[..., 0], 1.0, atol=1e-12)  # barycentric sums carry round-off
        np.testing.assert_allclose(depth, 5.0, atol=1e-12)


def test_rasterizer_rejects_bad_meshes():
    with pytest.raises(ValueError, match="vertices must be"):
        rasterize(np.zeros((3, 2)), np.zeros((1, 3), int), np.zeros((3, 1)), 4, 4)
    with pytest.raises(ValueError, match="triangle indices"):
        rasterize(np.zeros((3, 3)), np.array([[0, 1, 3]]), np.zeros((3, 1)), 4, 4)


def test_lambert_lights_a_surface_facing_the_viewer():
    """The random model's front faces +z; in image coordinates (y flipped) its normals must face the viewer."""
    model = random_model(300, 2, 1, seed=0)
    image_pts = np.column_stack([model.mean[:, 0], -model.mean[:, 1], model.mean[:, 2]])
    front = np.argmax(model.mean[:, 2])
    brightness = lambert(image_pts, model.triangles, light=(0, 0, 1), ambient=0.0, diffuse=1.0)
    assert brightness[front] > 0.9
    normals = vertex_normals(image_pts, model.triangles)
    np.testing.assert_allclose(np.linalg.norm(normals[np.unique(model.triangles)], axis=1), 1.0, atol=1e-12)


def test_overlay_and_views_draw_only_where_the_mesh_is():
    model = random_model(300, 2, 1, seed=0)
    image_pts = np.column_stack([model.mean[:, 0] + 80, -model.mean[:, 1] + 80, model.mean[:, 2]])
    photo = np.full((160, 200, 3), 17, dtype=np.uint8)
    out = render_overlay(photo, [(image_pts, model.triangles)])
    changed = np.any(out != 17, axis=2)
    assert changed[80, 80] and not changed[0, 0] and not changed[:, 190:].any()
    side = render_view(model.mean, model.triangles, yaw=90.0, size=64)
    assert side.shape == (64, 64, 3) and side.dtype == np.uint8 and (side != 40).any()


def test_bilinear_sample():
    img = np.arange(12, dtype=np.float64).reshape(3, 4, 1)  # value = 4 y + x
    values = bilinear_sample(img, np.array([0.0, 1.5, 3.0, 10.0]), np.array([0.0, 0.5, 2.0, -3.0]))[:, 0]
    np.testing.assert_allclose(values, [0.0, 3.5, 11.0, 3.0])


def test_vertex_colours_come_from_visible_pixels_only():
    """A near square over a far one: the far vertices are hidden and get the mean visible colour."""
    square = np.array([[2, 2], [12, 2], [12, 12], [2, 12]], dtype=np.float64)
    vertices = np.vstack([np.column_stack([square, np.full(4, 5.0)]),
                          np.column_stack([square + 0.5, np.full(4, -5.0)])])
    triangles = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    photo = np.zeros((16, 16, 3), dtype=np.uint8)
    photo[..., 2] = 200  # red in BGR
    photo[..., 0] = np.arange(16, dtype=np.uint8)[None, :] * 10  # blue grows with x
    visible = visible_vertices(vertices, triangles, 16, 16)
    np.testing.assert_array_equal(visible, [True] * 4 + [False] * 4)
    rgb = sample_vertex_colours(photo, vertices, triangles)
    assert np.all(rgb[:4, 0] == 200)
    np.testing.assert_array_equal(rgb[:4, 2], [20, 120, 120, 20])
    np.testing.assert_array_equal(rgb[4:], np.tile(np.rint(rgb[:4].mean(axis=0)), (4, 1)))


def test_obj_round_trip_and_ply_header(tmp_path):
    model = random_model(50, 2, 1, seed=4)
    colours = np.random.default_rng(0).integers(0, 256, (50, 3)).astype(np.uint8)
    write_obj(tmp_path / "m.obj", model.mean, model.triangles, colours)
    vertices, triangles, back = read_obj(tmp_path / "m.obj")
    np.testing.assert_allclose(vertices, model.mean, atol=5e-5)
    np.testing.assert_array_equal(triangles, model.triangles)
    np.testing.assert_array_equal(back, colours)
    write_ply(tmp_path / "m.ply", model.mean, model.triangles, colours)
    lines = (tmp_path / "m.ply").read_text().splitlines()
    end = lines.index("end_header")
    assert "element vertex 50" in lines and f"element face {len(model.triangles)}" in lines
    assert len(lines) == end + 1 + 50 + len(model.triangles)
    assert lines[end + 1].split()[3:] == [str(c) for c in colours[0]]
    assert lines[-1].split() == ["3"] + [str(i) for i in model.triangles[-1]]
    with pytest.raises(ValueError, match="unknown mesh format '.stl'"):
        write_mesh(tmp_path / "m.stl", model.mean, model.triangles)
