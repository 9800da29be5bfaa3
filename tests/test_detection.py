"""Face detectors: NMS, anchors, decoders, letterboxing, and all four families on real photos.

References and tolerances:
* NMS against a brute-force pairwise version (exact same indices);
* YuNet against ``cv2.FaceDetectorYN`` running the same file: boxes IoU >= 0.95,
  scores within 0.02, keypoints within 2 px;
* backend="minicnn" against backend="onnxruntime": same count, boxes IoU >= 0.99.
"""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from faceops.analysis import create_detector
from faceops.detection.base import as_size, letterbox, rank_by_prominence
from faceops import weights
from faceops.detection.blazeface import anchor_options, five_from_six, ssd_anchors
from faceops.detection.nms import box_iou, nms
from faceops.detection.retinaface import DEFAULT_SPEC as RETINA_SPEC, prior_boxes
from faceops.detection.scrfd import anchor_centres, distance_to_box
from faceops.errors import ModelConfigError

DETECTORS = ["scrfd_500m", "yunet", "retinaface_mnet025", "blazeface_full"]


# -- NMS ------------------------------------------------------------------------------------


def nms_brute_force(boxes, scores, thresh):
    """Greedy NMS written the slow, obvious way: visit boxes best-first, keep one unless a kept box overlaps it."""
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        inter = iw * ih
        union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
        return inter / union

    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable, like ours
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= thresh for k in keep):
            keep.append(i)
    return keep


@st.composite
def box_sets(draw):
    n = draw(st.integers(0, 40))
    xy = draw(arrays(np.float64, (n, 2), elements=st.floats(0, 200)))
    wh = draw(arrays(np.float64, (n, 2), elements=st.floats(1, 80)))
    # few distinct score values, so ties (and the stable order) get exercised
    scores = draw(arrays(np.float64, (n,), elements=st.sampled_from([0.5, 0.6, 0.7, 0.8, 0.9, 0.95])))
    return np.concatenate([xy, xy + wh], axis=1), scores


@settings(max_examples=150, deadline=None)
@given(data=box_sets(), thresh=st.sampled_from([0.0, 0.3, 0.4, 0.5, 0.9]))
def test_nms_matches_brute_force(data, thresh):
    boxes, scores = data
    assert nms(boxes, scores, thresh).tolist() == nms_brute_force(boxes, scores, thresh)


def test_nms_basic_cases():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.4).tolist() == [0, 2]
    assert nms(boxes, np.array([0.7, 0.8, 0.9]), 0.4).tolist() == [2, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.4).tolist() == []
    with pytest.raises(ValueError, match="nms needs"):
        nms(boxes, np.zeros(2), 0.4)


def test_box_iou_conventions():
    a = np.array([[0, 0, 9, 9]], float)
    b = np.array([[0, 0, 9, 4]], float)
    assert box_iou(a, b)[0, 0] == pytest.approx(0.5)  # 10x5 of 10x10 pixels
    assert box_iou(a, b, plus_one=False)[0, 0] == pytest.approx(36 / 81)


# -- anchors, priors and decoders -------------------------------------------------------------


def test_scrfd_anchor_centres_follow_insightface():
    centres = anchor_centres(2, 3, 8, 2)
    # np.stack(np.mgrid[:h, :w][::-1], -1) * stride, each repeated twice, row-major
    expected = np.stack(np.mgrid[:2, :3][::-1], axis=-1).reshape(-1, 2) * 8
    np.testing.assert_array_equal(centres, np.repeat(expected, 2, axis=0))
    np.testing.assert_array_equal(distance_to_box(np.array([[10.0, 20.0]]), np.array([[1.0, 2, 3, 4]])),
                                  [[9, 18, 13, 24]])


def test_blazeface_anchor_counts_and_order():
    short = ssd_anchors(anchor_options(weights.model_info("blazeface_short")["decode"]))
    full = ssd_anchors(anchor_options(weights.model_info("blazeface_full")["decode"]))
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # stride 8 layer: 16x16 cells, two anchors each, centre (x + 0.5) / 16
    np.testing.assert_allclose(short[:4], [[0.5 / 16, 0.5 / 16]] * 2 + [[1.5 / 16, 0.5 / 16]] * 2)
    # the three stride-16 layers share one 8x8 map with 6 anchors per cell
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(full[:2], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48]])


def test_five_from_six_estimates_mouth_corners_symmetrically():
    six = np.array([[[30, 40], [70, 40], [50, 60], [50, 80], [10, 45], [90, 45]]], float)
    five = five_from_six(six)
    np.testing.assert_allclose(five[0, :3], six[0, :3])
    np.testing.assert_allclose(five[0, 3:].mean(axis=0), [50, 80])
    ratio = (five[0, 4, 0] - five[0, 3, 0]) / 40.0
    assert ratio == pytest.approx((70.7299 - 41.5493) / (73.5318 - 38.2946))


def test_retinaface_priors():
    steps = tuple(RETINA_SPEC["decode"]["steps"])
    sizes = tuple(tuple(s) for s in RETINA_SPEC["decode"]["min_sizes"])
    priors = prior_boxes(640, 640, steps, sizes)
    assert priors.shape == ((80 * 80 + 40 * 40 + 20 * 20) * 2, 4)
    np.testing.assert_allclose(priors[:3], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])
    assert prior_boxes(100, 70, steps, sizes).shape[0] == 2 * (13 * 9 + 7 * 5 + 4 * 3)  # ceil(H/s) x ceil(W/s)


@pytest.fixture(scope="module")
def scrfd():
    return create_detector("scrfd_500m", backend="onnxruntime")


def test_scrfd_decode_one_synthetic_anchor(scrfd):
    # One anchor at stride 16, cell (row 2, col 3), second anchor of the cell fires.
    h, w = 64, 64
    outputs = []
    for stride in (8, 16, 32):
        k = (h // stride) * (w // stride) * 2
        outputs.append(np.zeros((k, 1), np.float32))
    for stride in (8, 16, 32):
        k = (h // stride) * (w // stride) * 2
        outputs.append(np.ones((k, 4), np.float32))
    for stride in (8, 16, 32):
        k = (h // stride) * (w // stride) * 2
        outputs.append(np.zeros((k, 10), np.float32))
    row = (2 * (w // 16) + 3) * 2 + 1
    outputs[1][row] = 0.9
    outputs[4][row] = [1, 2, 3, 4]
    outputs[7][row] = np.arange(10) / 10
    boxes, scores, kps = scrfd.decode(outputs, (h, w), 0.5)
    cx, cy = 3 * 16, 2 * 16
    np.testing.assert_allclose(boxes, [[cx - 16, cy - 32, cx + 48, cy + 64]])
    np.testing.assert_allclose(scores, [0.9])
    np.testing.assert_allclose(kps[0], np.array([cx, cy]) + (np.arange(10) / 10).reshape(5, 2) * 16, rtol=1e-6)


def test_letterbox_top_left_and_centred():
    img = np.full((100, 200, 3), 255, np.uint8)
    canvas, scale, pad = letterbox(img, (64, 64))
    assert canvas.shape == (64, 64, 3) and scale == pytest.approx(32 / 100) and pad == (0, 0)
    assert canvas[:32].min() == 255 and canvas[32:].max() == 0
    canvas, scale, pad = letterbox(img, (64, 64), centred=True)
    assert pad == (0, 16) and canvas[16:48].min() == 255 and canvas[:16].max() == 0


def test_rank_by_prominence_prefers_big_central_faces():
    boxes = np.array([[0, 0, 10, 10], [40, 40, 60, 60], [80, 80, 100, 100], [35, 35, 65, 65]], float)
    assert rank_by_prominence(boxes, (100, 100, 3), 2).tolist() == [3, 1]


def test_as_size():
    assert as_size(320) == (320, 320) and as_size((480, 360)) == (480, 360)
    with pytest.raises(ValueError, match="det_size"):
        as_size("big")
    with pytest.raises(ValueError, match="at least 32"):
        as_size(8)


# -- real photos -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def t1(photos):
    return photos["t1"]


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_finds_the_six_faces_of_t1(name, t1):
    det = create_detector(name, backend="onnxruntime")
    boxes, kps = det.detect(t1)
    assert boxes.shape == (6, 5) and kps.shape == (6, 5, 2)
    assert boxes.dtype == np.float32 and kps.dtype == np.float32
    assert (boxes[:, 4] >= 0.5).all() and (np.diff(boxes[:, 4]) <= 0).all()  # best first
    # every keypoint lies inside its box, left eye left of right eye
    inside = ((kps[..., 0] >= boxes[:, None, 0]) & (kps[..., 0] <= boxes[:, None, 2])
              & (kps[..., 1] >= boxes[:, None, 1]) & (kps[..., 1] <= boxes[:, None, 3]))
    assert inside.all()
    assert (kps[:, 0, 0] < kps[:, 1, 0]).all()


def test_detectors_agree_with_each_other(t1):
    results = {name: create_detector(name, backend="onnxruntime").detect(t1)[0] for name in DETECTORS}
    reference = results["scrfd_500m"]
    for name, boxes in results.items():
        # the families draw boxes differently (BlazeFace's are square), so only ask for clear overlap
        assert (box_iou(reference, boxes, plus_one=False).max(axis=1) > 0.5).all(), name


def test_blazeface_short_range_needs_a_close_up(photos, astronaut_face_box):
    det = create_detector("blazeface_short", backend="onnxruntime")
    # t1's faces are ~15 px at 128x128: short range finds none (expected; full range is for that)
    assert len(det.detect(photos["t1"])[0]) == 0
    x1, y1, x2, y2 = astronaut_face_box
    close_up = photos["astronaut"][max(0, y1 - 60): y2 + 60, max(0, x1 - 60): x2 + 60]
    boxes, kps = det.detect(close_up)
    assert len(boxes) == 1
    face = np.array([[x1 - max(0, x1 - 60), y1 - max(0, y1 - 60), x2 - max(0, x1 - 60), y2 - max(0, y1 - 60)]], float)
    assert box_iou(boxes, face, plus_one=False)[0, 0] > 0.5
    assert det.last_keypoints6.shape == (1, 6, 2)


def test_max_num_threshold_and_det_size(scrfd, t1):
    boxes, _ = scrfd.detect(t1, max_num=2)
    all_boxes, _ = scrfd.detect(t1)
    assert len(boxes) == 2
    expected = all_boxes[rank_by_prominence(all_boxes, t1.shape, 2)]
    np.testing.assert_array_equal(boxes, expected)
    assert len(scrfd.detect(t1, det_thresh=0.99)[0]) == 0
    for size in [(800, 608), (480, 480), (1280, 896)]:
        assert len(scrfd.detect(t1, det_size=size)[0]) == 6, size
    # a det_size that is not a multiple of the largest stride is padded up, not refused
    assert len(scrfd.detect(t1, det_size=(650, 650))[0]) == 6


def test_blank_image_has_no_face(scrfd):
    boxes, kps = scrfd.detect(np.zeros((300, 400, 3), np.uint8))
    assert boxes.shape == (0, 5) and kps.shape == (0, 5, 2)


def test_detector_input_errors(scrfd):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        scrfd.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        scrfd.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(TypeError, match="read_image"):
        scrfd.detect("t1.jpg")
    with pytest.raises(ModelConfigError, match="fixed 192x192"):
        create_detector("blazeface_full", backend="onnxruntime").detect(np.zeros((50, 50, 3), np.uint8),
                                                                        det_size=640)
    with pytest.raises(ModelConfigError, match="not a face detector"):
        create_detector("w600k_mbf")


def yunet_reference(path, img, score_thresh, nms_thresh=0.3):
    det = cv2.FaceDetectorYN.create(str(path), "", (img.shape[1], img.shape[0]), score_thresh, nms_thresh, 5000)
    _, faces = det.detect(img)
    faces = np.zeros((0, 15), np.float32) if faces is None else faces
    boxes = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], axis=1)
    return boxes, faces[:, 4:14].reshape(-1, 5, 2), faces[:, 14]


@pytest.mark.parametrize("photo", ["t1", "astronaut"])
def test_yunet_agrees_with_opencv(photo, photos, model_path):
    img = photos[photo]
    det = create_detector("yunet", backend="onnxruntime")
    # det_size = the image size: no resize (scale 1), only padding to multiples of 32, as OpenCV does
    boxes, kps = det.detect(img, det_size=(img.shape[1], img.shape[0]), det_thresh=0.5)
    ref_boxes, ref_kps, ref_scores = yunet_reference(model_path("yunet"), img, 0.5)
    assert len(boxes) == len(ref_boxes) >= 1
    iou = box_iou(boxes, ref_boxes, plus_one=False)
    match = iou.argmax(axis=1)
    assert (iou.max(axis=1) >= 0.95).all()
    assert len(set(match.tolist())) == len(match)
    np.testing.assert_allclose(boxes[:, 4], ref_scores[match], atol=0.02)
    np.testing.assert_allclose(kps, ref_kps[match], atol=2.0)


# -- minicnn against onnxruntime ---------------------------------------------------------------


@pytest.mark.parametrize("name", DETECTORS)
def test_minicnn_backend_matches_onnxruntime(name, t1):
    ours = create_detector(name, backend="minicnn")
    reference = create_detector(name, backend="onnxruntime")
    boxes, kps = ours.detect(t1)
    ref_boxes, ref_kps = reference.detect(t1)
    assert len(boxes) == len(ref_boxes) == 6
    assert (box_iou(boxes, ref_boxes, plus_one=False).max(axis=1) >= 0.99).all()
    np.testing.assert_allclose(boxes[:, 4], ref_boxes[:, 4], atol=1e-3)
    np.testing.assert_allclose(kps, ref_kps, atol=0.5)


@pytest.mark.parametrize("name", ["scrfd_500m", "retinaface_mnet025"])
def test_preprocess_matches_the_plain_formula(name):
    det = create_detector(name, backend="onnxruntime")
    canvas = np.random.default_rng(0).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    spec = weights.model_info(name)["input"]
    pixels = canvas[:, :, ::-1] if spec["colour_order"] == "RGB" else canvas
    expected = ((pixels.astype(np.float32) - np.float32(spec["mean"])) / np.float32(spec["std"]))
    np.testing.assert_allclose(det.preprocess(canvas), expected.transpose(2, 0, 1)[None], atol=1e-5)
