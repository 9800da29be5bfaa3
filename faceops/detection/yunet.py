"""YuNet (OpenCV Zoo, 2023mar): a tiny anchor-free face detector.

The same file runs inside ``cv2.FaceDetectorYN``; this decoder follows
OpenCV's ``face_detect.cpp`` so the two agree on the same image:

* Input: BGR, 0..255 as float, no normalisation; H and W padded (bottom and
  right, with black) up to multiples of 32, the largest stride.
* Outputs, named per stride s in (8, 16, 32): ``cls_s``, ``obj_s`` (both
  sigmoided inside the graph), ``bbox_s`` (4 values), ``kps_s`` (10 values),
  one prior per cell, cells row-major.
* The prior of cell (row i, column j) sits on the cell corner ``(j*s, i*s)``.
  ``score = sqrt(cls * obj)`` (clipped to [0, 1] first);
  box centre ``((j + dx) * s, (i + dy) * s)``, size ``(exp(dw) * s, exp(dh) * s)``;
  keypoint ``((j + kx) * s, (i + ky) * s)``.
* NMS IoU 0.3 (``cv2.FaceDetectorYN``'s default).
"""

from __future__ import annotations

import numpy as np

from faceops.detection.base import FaceDetector
from faceops.detection.scrfd import anchor_centres
from faceops.errors import ModelConfigError

# For an .onnx path outside the zoo: the manifest entry of yunet, the parts the pipeline reads.
DEFAULT_SPEC = {
    "input": {"colour_order": "BGR", "mean": [0.0] * 3, "std": [1.0] * 3},
    "decode": {"strides": [8, 16, 32], "anchors_per_cell": 1, "nms_iou": 0.3},
}


class YuNet(FaceDetector):
    """YuNet face detector (``yunet`` in the zoo); see the module docstring."""

    nms_thresh = 0.3  # cv2.FaceDetectorYN's default
    size_multiple = 32
    DEFAULT_SPEC = DEFAULT_SPEC

    def __init__(self, model: str = "yunet", backend: str = "minicnn", det_size=None, det_thresh: float = 0.5):
        super().__init__(model, backend=backend, det_size=det_size, det_thresh=det_thresh)
        self.strides = tuple(int(s) for s in self.decode_config["strides"])
        if int(self.decode_config.get("anchors_per_cell", 1)) != 1:
            raise ModelConfigError(f"{self.model}: YuNet decoding assumes one prior per cell")
        self.size_multiple = max(self.strides)
        expected = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in self.strides]
        missing = [name for name in expected if name not in self.output_names]
        if missing:
            raise ModelConfigError(f"{self.model}: not a YuNet file; outputs {missing} are missing (has {self.output_names})")
        # Ask for the outputs by name, in a fixed order, whatever order the file lists them in.
        self.output_names = expected

    def decode(self, outputs, canvas_hw, det_thresh):
        height, width = canvas_hw
        n = len(self.strides)
        boxes, scores, kps = [], [], []
        for level, stride in enumerate(self.strides):
            cls, obj, box, kp = (outputs[level + k * n].reshape(-1, outputs[level + k * n].shape[-1]) for k in range(4))
            score = np.sqrt(np.clip(cls[:, 0], 0.0, 1.0) * np.clip(obj[:, 0], 0.0, 1.0))
            cells = anchor_centres(height // stride, width // stride, 1, 1)  # (j, i) per cell
            if len(cells) != len(score):
                raise ModelConfigError(
                    f"{self.model}: stride {stride} head has {len(score)} rows, expected {len(cells)} for {width}x{height}"
                )
            hit = score >= det_thresh
            cell, b, k = cells[hit], box[hit], kp[hit]
            centre = (cell + b[:, :2]) * stride
            half = np.exp(b[:, 2:4]) * stride / 2
            boxes.append(np.concatenate([centre - half, centre + half], axis=1))
            kps.append((cell[:, None, :] + k.reshape(-1, 5, 2)) * stride)
            scores.append(score[hit])
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)
