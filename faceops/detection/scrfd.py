"""SCRFD (InsightFace's "Sample and Computation Redistribution" face detector).

Decoding follows InsightFace's ``model_zoo/scrfd.py``, constant for constant:

* The network has one head per stride. Its 9 outputs are ordered scores for
  strides 8, 16, 32, then box distances, then keypoint offsets (a 15-output
  export adds strides 64 and 128 with one anchor per cell; the strides and
  anchors per cell come from the manifest's "decode" entry). Batched exports
  add a leading batch axis, which we drop.
* Anchor centres sit on the cell corners, ``(x * stride, y * stride)`` (no
  +0.5), each repeated once per anchor (2 anchors per cell for the 9-output
  files) in row-major order, matching the flattened output rows.
* Boxes are distances from the centre to the four sides, in units of the
  stride: ``[cx - d0, cy - d1, cx + d2, cy + d3]``. Keypoints are offsets
  ``centre + pred * stride``. Scores come out of the graph already sigmoided.
* Input: RGB, ``(x - 127.5) / 128``; NMS IoU 0.4.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from faceops.detection.base import FaceDetector
from faceops.errors import ModelConfigError

# For an .onnx path outside the zoo: the manifest entry of scrfd_500m, the parts the pipeline reads.
DEFAULT_SPEC = {
    "input": {"colour_order": "RGB", "mean": [127.5] * 3, "std": [128.0] * 3},
    "decode": {"strides": [8, 16, 32], "anchors_per_cell": 2, "nms_iou": 0.4},
}


@lru_cache(maxsize=64)
def anchor_centres(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """(height*width*num_anchors, 2) anchor centres (x, y) in input pixels, row-major, each repeated."""
    ys, xs = np.mgrid[:height, :width]
    centres = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
    if num_anchors > 1:
        centres = np.repeat(centres, num_anchors, axis=0)
    centres.setflags(write=False)  # shared through the cache
    return centres


def distance_to_box(centres: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(K, 4) boxes from centres (K, 2) and side distances (K, 4) [left, top, right, bottom]."""
    return np.concatenate([centres - distances[:, :2], centres + distances[:, 2:4]], axis=1)


class SCRFD(FaceDetector):
    """SCRFD face detector (``scrfd_500m`` in the zoo); see the module docstring."""

    nms_thresh = 0.4
    DEFAULT_SPEC = DEFAULT_SPEC

    def __init__(self, model: str = "scrfd_500m", backend: str = "minicnn", det_size=None, det_thresh: float = 0.5):
        super().__init__(model, backend=backend, det_size=det_size, det_thresh=det_thresh)
        self.strides = tuple(int(s) for s in self.decode_config["strides"])
        self.num_anchors = int(self.decode_config["anchors_per_cell"])
        if len(self.output_names) != 3 * len(self.strides):
            raise ModelConfigError(
                f"{self.model}: an SCRFD file with strides {self.strides} has {3 * len(self.strides)} outputs "
                f"(score, box, keypoints per stride); this one has {len(self.output_names)}: {self.output_names}"
            )
        self.size_multiple = max(self.strides)

    def decode(self, outputs, canvas_hw, det_thresh):
        height, width = canvas_hw
        n = len(self.strides)
        boxes, scores, kps = [], [], []
        for level, stride in enumerate(self.strides):
            score = outputs[level]
            box = outputs[level + n]
            kp = outputs[level + 2 * n]
            if score.ndim == 3:  # batched export: (1, K, C)
                score, box, kp = score[0], box[0], kp[0]
            centres = anchor_centres(height // stride, width // stride, stride, self.num_anchors)
            if len(centres) != len(score):
                raise ModelConfigError(
                    f"{self.model}: stride {stride} head has {len(score)} rows, expected {len(centres)} "
                    f"for a {width}x{height} input with {self.num_anchors} anchors per cell"
                )
            hit = score[:, 0] >= det_thresh
            centre = centres[hit]
            boxes.append(distance_to_box(centre, box[hit] * stride))
            kps.append(centre[:, None, :] + kp[hit].reshape(-1, 5, 2) * stride)
            scores.append(score[hit, 0])
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)
