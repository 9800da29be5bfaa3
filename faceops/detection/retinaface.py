"""RetinaFace with a MobileNet-0.25 backbone (biubug6/Pytorch_Retinaface export).

SSD-style decoding over fixed priors, as in that repository's
``layers/functions/prior_box.py`` and ``utils/box_utils.py``:

* Priors: for each step ``s`` in (8, 16, 32) with min sizes
  ((16, 32), (64, 128), (256, 512)), a feature map of ``ceil(H/s) x ceil(W/s)``
  cells; each cell (row i, column j) has one square prior per min size ``m``,
  centred at ``((j + 0.5) * s, (i + 0.5) * s)`` with side ``m``. Rows are
  ordered step, row, column, min size, matching the network's outputs.
* Decoding with variances (0.1, 0.2): centre ``p_c + loc_xy * 0.1 * p_wh``,
  size ``p_wh * exp(loc_wh * 0.2)``; landmarks ``p_c + lmk * 0.1 * p_wh``.
  (The reference works in [0, 1] units and multiplies by (W, H) at the end;
  we work in pixels directly, which is the same arithmetic.)
* Input: BGR minus the mean (104, 117, 123), no scaling. The ``conf`` output
  is already softmaxed; the face score is its column 1.
* NMS IoU 0.4.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from faceops.detection.base import FaceDetector
from faceops.errors import ModelConfigError

# For an .onnx path outside the zoo: the manifest entry of retinaface_mnet025, the parts the pipeline reads.
DEFAULT_SPEC = {
    "input": {"colour_order": "BGR", "mean": [104.0, 117.0, 123.0], "std": [1.0] * 3},
    "decode": {"steps": [8, 16, 32], "min_sizes": [[16, 32], [64, 128], [256, 512]], "variance": [0.1, 0.2],
               "nms_iou": 0.4},
}


@lru_cache(maxsize=16)
def prior_boxes(height: int, width: int, steps: tuple[int, ...], min_sizes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """(P, 4) priors (cx, cy, w, h) in pixels for a ``height`` x ``width`` input."""
    priors = []
    for step, sizes in zip(steps, min_sizes):
        rows, cols = -(-height // step), -(-width // step)
        ys, xs = np.mgrid[:rows, :cols]
        cx = ((xs + 0.5) * step).reshape(-1, 1).repeat(len(sizes), axis=1)
        cy = ((ys + 0.5) * step).reshape(-1, 1).repeat(len(sizes), axis=1)
        side = np.broadcast_to(np.array(sizes, dtype=np.float64), cx.shape)
        priors.append(np.stack([cx, cy, side, side], axis=-1).reshape(-1, 4))
    out = np.concatenate(priors).astype(np.float32)
    out.setflags(write=False)  # shared through the cache
    return out


class RetinaFace(FaceDetector):
    """RetinaFace-MobileNet0.25 face detector (``retinaface_mnet025`` in the zoo); see the module docstring."""

    nms_thresh = 0.4
    size_multiple = 32
    DEFAULT_SPEC = DEFAULT_SPEC

    def __init__(self, model: str = "retinaface_mnet025", backend: str = "minicnn", det_size=None,
                 det_thresh: float = 0.5):
        super().__init__(model, backend=backend, det_size=det_size, det_thresh=det_thresh)
        missing = [name for name in ("loc", "conf", "landmarks") if name not in self.output_names]
        if missing:
            raise ModelConfigError(f"{self.model}: not a RetinaFace export; outputs {missing} are missing "
                                   f"(has {self.output_names})")
        self.output_names = ["loc", "conf", "landmarks"]
        self.steps = tuple(int(s) for s in self.decode_config["steps"])
        self.min_sizes = tuple(tuple(int(m) for m in sizes) for sizes in self.decode_config["min_sizes"])
        self.variance = tuple(float(v) for v in self.decode_config["variance"])
        self.size_multiple = max(self.steps)

    def decode(self, outputs, canvas_hw, det_thresh):
        loc, conf, landmarks = (o[0] for o in outputs)
        priors = prior_boxes(*canvas_hw, self.steps, self.min_sizes)
        centre_var, size_var = self.variance
        if len(priors) != len(loc):
            raise ModelConfigError(f"{self.model}: {len(loc)} output rows, expected {len(priors)} priors "
                                   f"for a {canvas_hw[1]}x{canvas_hw[0]} input")
        hit = conf[:, 1] >= det_thresh
        p, l, lm = priors[hit], loc[hit], landmarks[hit]
        centre = p[:, :2] + l[:, :2] * centre_var * p[:, 2:]
        size = p[:, 2:] * np.exp(l[:, 2:] * size_var)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        kps = p[:, None, :2] + lm.reshape(-1, 5, 2) * centre_var * p[:, None, 2:]
        return boxes, conf[hit, 1], kps
