"""Greedy non-maximum suppression, shared by every detector.

A detector proposes many overlapping boxes around each face (neighbouring
anchors all fire). NMS keeps the best-scoring box, drops every other box that
overlaps it by more than ``iou_thresh`` (intersection over union), and repeats
with the best box left.

Box area follows InsightFace's pixel-inclusive convention,
``(x2 - x1 + 1) * (y2 - y1 + 1)`` (a box from pixel 0 to pixel 9 is 10 pixels
wide), so results match InsightFace's ``scrfd.py`` box for box.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, >=4) and ``b`` (M, >=4), x1 y1 x2 y2 -> (N, M).

    ``plus_one`` selects the pixel-inclusive area convention used by NMS;
    ``plus_one=False`` is the plain geometric IoU (used to compare results).
    """
    a = np.asarray(a, dtype=np.float64)[:, None, :4]
    b = np.asarray(b, dtype=np.float64)[None, :, :4]
    one = 1.0 if plus_one else 0.0
    inter_w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one)
    inter_h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best score first.

    ``boxes`` is (N, 4) x1 y1 x2 y2, ``scores`` (N,). A box is dropped when its
    IoU with an already kept, higher-scoring box is strictly above
    ``iou_thresh``. Ties in score keep the earlier box first (stable sort).
    Each round compares the kept box with all remaining ones at once, so the
    Python loop runs once per kept box, not once per pair.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] < 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms needs boxes (N, 4) and scores (N,); got {boxes.shape} and {scores.shape}")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = inter_w * inter_h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)  # guards degenerate boxes
        order = rest[iou <= iou_thresh]
    return np.asarray(keep, dtype=np.int64)
