"""Turning a face crop into a model's input tensor, as the model's manifest entry says.

Every model in ``weights/manifest.json`` carries an input spec (size, colour
order, per-channel mean and std on 0..255 pixels, layout). The face modules
(recognition, landmarks, attributes) cut their crop in their own way, then
hand it here: :class:`InputSpec` reads the spec once and builds the tensor,
so no module guesses a normalisation from a graph's node names or shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceops import weights
from faceops.errors import ModelConfigError

COLOUR_ORDERS = ("RGB", "BGR", "GRAY")


@dataclass(frozen=True)
class InputSpec:
    """How model ``model`` wants its input: ``blob(crop_bgr)`` does it.

    ``size`` is (width, height); ``mean`` and ``std`` are per channel, in the
    model's colour order, on 0..255 pixels (the tensor is ``(x - mean) / std``).
    """

    model: str
    size: tuple[int, int]
    colour_order: str
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_manifest(cls, model: str) -> "InputSpec":
        spec = weights.model_info(model).get("input")
        if not spec:
            raise ModelConfigError(f"{model}: its manifest entry has no input spec, so it cannot be fed an image")
        try:
            size = (int(spec["size"]["width"]), int(spec["size"]["height"]))
            order = spec["colour_order"]
            channels = 1 if order == "GRAY" else 3
            mean = np.asarray(spec["mean"], np.float32).reshape(channels)
            std = np.asarray(spec["std"], np.float32).reshape(channels)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelConfigError(f"{model}: incomplete input spec in the manifest ({exc!r}): {spec}") from exc
        if order not in COLOUR_ORDERS:
            raise ModelConfigError(f"{model}: colour_order {order!r} in the manifest; expected one of {COLOUR_ORDERS}")
        if spec.get("layout", "NCHW") != "NCHW":
            raise ModelConfigError(f"{model}: layout {spec['layout']!r} in the manifest; faceops feeds NCHW only")
        return cls(model, size, order, mean, std)

    def blob(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The (1, C, H, W) float32 tensor for a BGR uint8 crop already of ``size``."""
        width, height = self.size
        if crop_bgr.shape[:2] != (height, width):
            raise ValueError(f"{self.model}: the crop is {crop_bgr.shape[1]}x{crop_bgr.shape[0]}, "
                             f"the model takes {width}x{height}")
        if self.colour_order == "RGB":
            pixels = crop_bgr[:, :, ::-1]
        elif self.colour_order == "GRAY":
            pixels = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)[:, :, None]
        else:
            pixels = crop_bgr
        x = (pixels.astype(np.float32) - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
