"""What every face detector shares: letterboxing, the run, NMS and ranking.

A detector family (SCRFD, YuNet, RetinaFace, BlazeFace) differs only in how
it turns the network's outputs back into boxes, scores and keypoints
(``decode``) and in a few constants. Everything else lives here, once:

1. **letterbox** the image into the detector's input size (keeping its aspect
   ratio, padding with black), remembering the scale and offset;
2. normalise it as the model's manifest entry says (colour order, mean,
   std: ``faceops.weights.model_info(name)["input"]``) and run the session
   (minicnn or onnxruntime, see ``faceops.runtime``);
3. ``decode`` the outputs into candidates above ``det_thresh`` (coordinates
   in input-canvas pixels);
4. greedy NMS (``faceops.detection.nms``);
5. undo the letterbox, so coordinates are pixels of the original image;
6. optionally keep the ``max_num`` most prominent faces.

Models are configured explicitly: a zoo model's input spec and decoding
constants (strides, anchors, ...) come from its manifest entry; an ``.onnx``
path outside the zoo uses the family's ``DEFAULT_SPEC``, which mirrors the
manifest entry of the family's zoo model. Nothing is guessed from the graph.

``detect`` returns ``(boxes, kps)``: boxes ``(N, 5)`` float32 holding
x1, y1, x2, y2, score, best score first, and keypoints ``(N, 5, 2)``
float32: left eye, right eye, nose tip, left and right mouth corner, where
"left" means image left (the person's right eye).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np

from faceops import weights
from faceops.detection.nms import nms
from faceops.errors import ModelConfigError
from faceops.runtime import create_session

def as_size(det_size) -> tuple[int, int]:
    """``640`` or ``(640, 480)`` -> ``(width, height)`` ints (InsightFace's ``det_size`` order)."""
    if isinstance(det_size, (int, np.integer)):
        det_size = (int(det_size), int(det_size))
    try:
        width, height = (int(v) for v in det_size)
    except (TypeError, ValueError):
        raise ValueError(f"det_size must be an int or a (width, height) pair; got {det_size!r}") from None
    if width < 32 or height < 32:
        raise ValueError(f"det_size must be at least 32x32; got {width}x{height}")
    return width, height


def letterbox(img: np.ndarray, size: tuple[int, int], centred: bool = False,
              interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Fit ``img`` into a ``size`` = (width, height) black canvas, keeping its aspect ratio.

    Returns ``(canvas, scale, (pad_x, pad_y))``: a canvas pixel ``p`` is the
    image pixel ``(p - pad) / scale``. InsightFace puts the image in the
    top-left corner (``centred=False``, SCRFD's convention, also used for
    YuNet and RetinaFace); MediaPipe centres it (BlazeFace). The resized side
    lengths are computed exactly as InsightFace does (``int`` truncation) so
    the scale matches its results digit for digit. ``interpolation`` is
    OpenCV's (InsightFace: bilinear).
    """
    width, height = size
    h, w = img.shape[:2]
    if h / w > height / width:
        new_h = height
        new_w = int(new_h / (h / w))
    else:
        new_w = width
        new_h = int(new_w * (h / w))
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    scale = new_h / h
    resized = cv2.resize(img, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    pad_x, pad_y = ((width - new_w) // 2, (height - new_h) // 2) if centred else (0, 0)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, scale, (pad_x, pad_y)


def rank_by_prominence(boxes: np.ndarray, image_shape: tuple[int, ...], max_num: int) -> np.ndarray:
    """Indices of the ``max_num`` most prominent boxes (InsightFace's ranking).

    Prominence = box area minus twice the squared distance from the box centre
    to the image centre: big faces near the middle win.
    """
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    img_centre = np.array([image_shape[1] / 2, image_shape[0] / 2])
    box_centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    offset_sq = ((box_centre - img_centre) ** 2).sum(axis=1)
    value = area - 2.0 * offset_sq
    return np.argsort(-value, kind="stable")[:max_num]


def model_spec(model, default_spec: dict) -> dict:
    """The input spec and decoding constants of ``model``: its manifest entry, or ``default_spec`` for a path."""
    if isinstance(model, str) and not model.endswith(".onnx"):
        return weights.model_info(model)
    if not default_spec:
        raise ModelConfigError(f"{model}: no manifest entry and no default spec for this detector family")
    return default_spec


def check_image(img) -> None:
    """Refuse anything but an ``(H, W, 3)`` uint8 array, saying what was given instead."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a BGR image as a numpy array, got {type(img).__name__}; use faceops.read_image(path)")
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W, 3) uint8 BGR image, got shape {img.shape} dtype {img.dtype}; "
            "faceops.read_image converts grayscale, alpha and 16-bit files"
        )
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"image of {img.shape[1]}x{img.shape[0]} pixels is too small to detect faces in")


class FaceDetector(ABC):
    """Base class of the detector families; subclasses set the class constants and two methods.

    Class constants:
      ``nms_thresh``: IoU above which NMS drops a box (the family's reference value);
      ``centred_letterbox``: where the image sits in the canvas (see ``letterbox``);
      ``size_multiple``: the canvas is padded up to a multiple of this (the largest stride);
      ``interpolation``: the OpenCV resize used for letterboxing.

      ``DEFAULT_SPEC``: ``{"input": ..., "decode": ...}`` for files outside the zoo (see the module docstring).

    Subclasses implement ``decode(outputs, canvas_hw, det_thresh) ->
    (boxes (K, 4), scores (K,), kps (K, P, 2))`` in canvas pixels,
    candidates below ``det_thresh`` already dropped.

    ``model`` is a zoo name (``faceops.weights``) or an ``.onnx`` path;
    ``backend`` is "minicnn" (default) or "onnxruntime"; ``det_size``
    (width, height) defaults to the file's fixed input size, if it has one,
    else 640x640; ``det_thresh`` is the minimum face score.
    """

    taskname = "detection"
    nms_thresh = 0.4
    centred_letterbox = False
    size_multiple = 32
    interpolation = cv2.INTER_LINEAR
    DEFAULT_SPEC: dict = {}

    def __init__(self, model: str, backend: str = "minicnn", det_size=None, det_thresh: float = 0.5):
        self.model = str(model)
        self.backend = backend
        self.spec = model_spec(model, self.DEFAULT_SPEC)
        self.decode_config = self.spec.get("decode", {})
        self.nms_thresh = float(self.decode_config.get("nms_iou", self.nms_thresh))
        spec_in = self.spec["input"]
        if spec_in["colour_order"] not in ("RGB", "BGR"):
            raise ModelConfigError(f"{self.model}: a face detector takes RGB or BGR input, "
                                   f"the manifest says {spec_in['colour_order']!r}")
        self.swap_rb = spec_in["colour_order"] == "RGB"  # canvases are BGR
        self.mean = np.asarray(spec_in["mean"], dtype=np.float32)
        self.std = np.asarray(spec_in["std"], dtype=np.float32)
        self.session = create_session(model, backend=backend)
        inputs = self.session.get_inputs()
        if len(inputs) < 1:
            raise ModelConfigError(f"{self.model}: the model declares no input")
        self.input_name = inputs[0].name
        shape = list(inputs[0].shape)
        if len(shape) != 4:
            raise ModelConfigError(f"{self.model}: expected an NCHW image input, got shape {shape}")
        # A file with fixed H and W (e.g. BlazeFace) runs only at that size.
        h, w = shape[2], shape[3]
        self.fixed_size = (w, h) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
        self.output_names = [o.name for o in self.session.get_outputs()]
        # det_size=None: the file's fixed size if it has one, else InsightFace's default 640x640.
        self.det_size = self._resolve_size(det_size) if det_size is not None else self.fixed_size or (640, 640)
        self.det_thresh = float(det_thresh)

    def prepare(self, det_size=None, det_thresh: float | None = None) -> None:
        """Set the default input size (width, height) and score threshold for ``detect``."""
        if det_size is not None:
            self.det_size = self._resolve_size(det_size)
        if det_thresh is not None:
            self.det_thresh = float(det_thresh)

    def _resolve_size(self, det_size) -> tuple[int, int]:
        size = as_size(det_size)
        if self.fixed_size is None:
            return size
        if size != self.fixed_size:
            raise ModelConfigError(
                f"{self.model} has a fixed {self.fixed_size[0]}x{self.fixed_size[1]} input in its file, "
                f"so it cannot run at det_size {size[0]}x{size[1]}; use det_size={self.fixed_size} (or None)"
            )
        return size

    def canvas_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The canvas (width, height) for ``size``: rounded up to ``size_multiple`` so every stride divides it."""
        m = self.size_multiple
        return (-(-size[0] // m) * m, -(-size[1] // m) * m)

    def preprocess(self, canvas: np.ndarray) -> np.ndarray:
        """The network input for a BGR uint8 canvas: (1, 3, H, W) float32, ``(x - mean) / std``.

        Written one channel plane at a time into the NCHW buffer: the same
        arithmetic as ``((rgb - mean) / std).transpose(2, 0, 1)`` but several
        times faster, as each plane is read once and scaled in place.
        """
        height, width = canvas.shape[:2]
        blob = np.empty((1, 3, height, width), dtype=np.float32)
        for channel in range(3):
            source = 2 - channel if self.swap_rb else channel  # canvases are BGR
            plane = blob[0, channel]
            np.subtract(canvas[:, :, source], self.mean[channel], out=plane, dtype=np.float32)
            plane *= np.float32(1.0) / self.std[channel]
        return blob

    @abstractmethod
    def decode(self, outputs: list[np.ndarray], canvas_hw: tuple[int, int], det_thresh: float):
        """``(boxes (K, 4), scores (K,), kps (K, P, 2))`` in canvas pixels, only scores >= ``det_thresh``.

        P is 5 (the ArcFace points) for every family but BlazeFace, which appends its own six.
        """

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        """The raw network outputs for one NCHW blob, in the file's output order."""
        return self.session.run(self.output_names, {self.input_name: blob})

    def detect(self, img_bgr: np.ndarray, det_size=None, det_thresh: float | None = None, max_num: int = 0):
        """Faces in ``img_bgr``: ``(boxes (N, 5) [x1, y1, x2, y2, score], kps (N, 5, 2))``, float32.

        ``det_size`` (width, height) and ``det_thresh`` override the values
        set by ``prepare`` for this call; ``max_num > 0`` keeps that many
        faces, the most prominent first (see ``rank_by_prominence``);
        otherwise faces come best score first.
        """
        check_image(img_bgr)
        size = self.det_size if det_size is None else self._resolve_size(det_size)
        thresh = self.det_thresh if det_thresh is None else float(det_thresh)
        canvas_w, canvas_h = self.canvas_size(size)
        canvas, scale, (pad_x, pad_y) = letterbox(img_bgr, size, centred=self.centred_letterbox,
                                                  interpolation=self.interpolation)
        if (canvas_w, canvas_h) != size:
            padded = np.zeros((canvas_h, canvas_w, 3), dtype=np.uint8)
            padded[: size[1], : size[0]] = canvas
            canvas = padded

        outputs = self.run(self.preprocess(canvas))
        boxes, scores, kps = self.decode(outputs, (canvas_h, canvas_w), thresh)
        keep = nms(boxes, scores, self.nms_thresh) if len(scores) else np.zeros(0, dtype=np.int64)
        boxes, scores, kps = boxes[keep], scores[keep], kps[keep]

        offset = np.array([pad_x, pad_y], dtype=np.float64)
        boxes = ((boxes.reshape(-1, 2, 2) - offset) / scale).reshape(-1, 4)
        kps = (kps - offset) / scale
        dets = np.concatenate([boxes, scores[:, None]], axis=1).astype(np.float32)
        kps = kps.astype(np.float32)
        if max_num > 0 and len(dets) > max_num:
            order = rank_by_prominence(dets, img_bgr.shape, max_num)
            dets, kps = dets[order], kps[order]
        return dets, kps
