"""Face detectors: one decoder per family, sharing letterboxing and NMS (``base.py``, ``nms.py``).

    from faceops.detection import SCRFD
    boxes, kps = SCRFD("scrfd_500m").detect(img_bgr)    # (N, 5) x1 y1 x2 y2 score, (N, 5, 2)

Families: ``SCRFD`` (scrfd_500m), ``YuNet`` (yunet), ``RetinaFace``
(retinaface_mnet025), ``BlazeFace`` (blazeface_short, blazeface_full).
``faceops.analysis.create_detector(name)`` picks the family for a zoo name.
"""

from faceops.detection.base import FaceDetector
from faceops.detection.blazeface import BlazeFace
from faceops.detection.nms import box_iou, nms
from faceops.detection.retinaface import RetinaFace
from faceops.detection.scrfd import SCRFD
from faceops.detection.yunet import YuNet

__all__ = ["FaceDetector", "SCRFD", "YuNet", "RetinaFace", "BlazeFace", "nms", "box_iou"]
