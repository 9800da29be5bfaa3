"""Measure same/different cosine similarities for each recogniser and print the threshold table.

What it measures on (the only real face photos the project's pinned wheels
ship; docs/recognition.md discusses what that does and does not tell):

* identities: the 6 different people in ``t1`` (each cut out of the group
  photo with a margin of one face box around it), the ``astronaut`` photo,
  and ``tom_hanks`` (an aligned 112x112 crop, put on a gray 224x224 canvas so
  the detector sees it whole): 8 people;
* variants of every identity's photo: the original plus photometric and
  geometric changes applied *before* detection and alignment (mirror,
  brightness, contrast, blur, noise, JPEG, grayscale, rotation, downscaling,
  and a few combinations). Every variant goes through the full pipeline:
  SCRFD-500M detection -> the most prominent face -> ArcFace alignment ->
  embedding;
* **genuine** pairs: two variants of the same identity; **impostor** pairs:
  variants of two different identities.

A second, smaller check uses ``lfw_subset`` (scikit-image: 100 LFW faces at
25x25 gray, no identity labels): each face is upscaled 4x (bicubic) onto a
gray canvas, detected and embedded; we report the similarity of every pair
and, separately, of the 4 images that we judged *by eye* to show one man
(indices 0, 36, 73, 90: George W. Bush; the subset itself does not say so).
These are real different-photo pairs of one person, but at 25 pixels.

Run::

    python scripts/measure_thresholds.py                  # minicnn, both models
    python scripts/measure_thresholds.py --backend onnxruntime --json out.json

It prints, per model, the genuine and impostor similarity statistics, the
false accept / false reject rates at a few thresholds, and the threshold the
project documents (``faceops.recognition.THRESHOLDS``) with its rates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faceops import weights  # noqa: E402
from faceops.analysis import create_detector  # noqa: E402
from faceops.image_io import read_image  # noqa: E402
from faceops.recognition import RECOGNITION_MODELS, THRESHOLDS, Recognizer, l2_normalize  # noqa: E402

CANDIDATE_THRESHOLDS = (0.2, 0.25, 0.3, 0.363, 0.4, 0.45, 0.5, 0.6, 0.7)

# Published reference points: InsightFace users report 0.4-0.5 for its models
# (we take the lower end); OpenCV's SFace sample uses cosine 0.363.
REFERENCE_THRESHOLDS = {"w600k_mbf": 0.40, "sface": 0.363}


def rule_threshold(impostor: np.ndarray, reference: float) -> float:
    """The project's rule: the larger of the published reference and the
    smallest multiple of 0.05 strictly above every impostor similarity we measured.

    Why not the midpoint of the gap: our genuine pairs are augmentations of one
    photo, far more alike than two real photos of one person (other day, age,
    pose, light), so the genuine distribution of real use reaches much lower;
    the threshold should sit just above the impostors, not in the middle.
    """
    above_impostors = (np.floor(impostor.max() / 0.05) + 1) * 0.05
    return round(float(max(reference, above_impostors)), 3)


def identity_photos() -> dict[str, np.ndarray]:
    """name -> a BGR photo holding that one person (see the module docstring)."""
    photos = {}
    t1 = read_image(weights.photo_path("t1"))
    detector = create_detector("scrfd_500m", backend="onnxruntime")
    boxes, _ = detector.detect(t1)
    order = np.argsort(boxes[:, 0])  # left to right, so names are stable
    for index, box in enumerate(boxes[order]):
        x1, y1, x2, y2 = box[:4]
        w, h = x2 - x1, y2 - y1
        left, top = int(max(0, x1 - w)), int(max(0, y1 - h))
        right, bottom = int(min(t1.shape[1], x2 + w)), int(min(t1.shape[0], y2 + h))
        photos[f"t1_person{index + 1}"] = t1[top:bottom, left:right].copy()
    photos["astronaut"] = read_image(weights.photo_path("astronaut"))
    tom = read_image(weights.photo_path("tom_hanks"))
    photos["tom_hanks"] = cv2.copyMakeBorder(tom, 56, 56, 56, 56, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    return photos


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def scale(img: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


# name -> function of a BGR photo; each is applied before detection and alignment
VARIANTS = {
    "original": lambda im: im,
    "mirror": lambda im: im[:, ::-1].copy(),
    "brighter": lambda im: cv2.convertScaleAbs(im, alpha=1.0, beta=50),
    "darker": lambda im: cv2.convertScaleAbs(im, alpha=0.6, beta=0),
    "low_contrast": lambda im: cv2.convertScaleAbs(im, alpha=0.5, beta=64),
    "blur_1.5": lambda im: cv2.GaussianBlur(im, (0, 0), 1.5),
    "blur_3": lambda im: cv2.GaussianBlur(im, (0, 0), 3.0),
    "noise_12": lambda im: noise(im, 12.0),
    "jpeg_20": lambda im: jpeg(im, 20),
    "jpeg_8": lambda im: jpeg(im, 8),
    "gray": gray,
    "rot_+10": lambda im: rotate(im, 10),
    "rot_-15": lambda im: rotate(im, -15),
    "rot_+25": lambda im: rotate(im, 25),
    "scale_0.5": lambda im: scale(im, 0.5),
    "scale_0.3": lambda im: scale(im, 0.3),
    "mirror+rot_-10+blur": lambda im: cv2.GaussianBlur(rotate(im[:, ::-1].copy(), -10), (0, 0), 1.5),
    "darker+jpeg_30+scale_0.6": lambda im: jpeg(scale(cv2.convertScaleAbs(im, alpha=0.6), 0.6), 30),
}


def embed_variants(photos, backend: str, models) -> dict:
    """{model: {identity: {variant: unit embedding}}}; variants where no face is found are reported and skipped."""
    detector = create_detector("scrfd_500m", backend=backend)
    recognizers = {m: Recognizer(m, backend=backend) for m in models}
    out = {m: {} for m in models}
    for identity, photo in photos.items():
        for variant, transform in VARIANTS.items():
            img = np.ascontiguousarray(transform(photo))
            boxes, kps = detector.detect(img, max_num=1)
            if len(boxes) == 0:
                print(f"  no face found in {identity}/{variant}; skipped", file=sys.stderr)
                continue
            for model, recognizer in recognizers.items():
                vector = recognizer.embed_aligned(recognizer.align(img, kps[0]))
                out[model].setdefault(identity, {})[variant] = l2_normalize(vector)[0]
    return out


def pair_similarities(per_identity: dict) -> tuple[np.ndarray, np.ndarray]:
    genuine, impostor = [], []
    for identity, variants in per_identity.items():
        vecs = list(variants.values())
        genuine += [float(a @ b) for a, b in itertools.combinations(vecs, 2)]
    for (_, va), (_, vb) in itertools.combinations(per_identity.items(), 2):
        impostor += [float(a @ b) for a in va.values() for b in vb.values()]
    return np.array(genuine), np.array(impostor)


LFW_SAME_PERSON_BY_EYE = (0, 36, 73, 90)


def lfw_embeddings(backend: str, models) -> dict:
    """{model: {index: unit embedding}} for the lfw_subset faces (first 100 images) the detector finds."""
    faces = np.load(weights.photo_path("lfw_subset"), allow_pickle=False)[:100]
    detector = create_detector("scrfd_500m", backend=backend)
    recognizers = {m: Recognizer(m, backend=backend) for m in models}
    out = {m: {} for m in models}
    for index, face in enumerate(faces):
        gray_face = np.clip(face * 255.0 + 0.5, 0, 255).astype(np.uint8)
        big = cv2.resize(cv2.cvtColor(gray_face, cv2.COLOR_GRAY2BGR), (100, 100), interpolation=cv2.INTER_CUBIC)
        img = cv2.copyMakeBorder(big, 50, 50, 50, 50, cv2.BORDER_CONSTANT, value=(127, 127, 127))
        boxes, kps = detector.detect(img, max_num=1)
        if len(boxes) == 0:
            continue
        for model, recognizer in recognizers.items():
            out[model][index] = l2_normalize(recognizer.embed_aligned(recognizer.align(img, kps[0])))[0]
    return out


def lfw_summary(per_index: dict, threshold: float) -> dict:
    keys = sorted(per_index)
    pairs = [(float(per_index[a] @ per_index[b]), a, b) for a, b in itertools.combinations(keys, 2)]
    same = [s for s, a, b in pairs if a in LFW_SAME_PERSON_BY_EYE and b in LFW_SAME_PERSON_BY_EYE]
    others = np.array([s for s, a, b in pairs if not (a in LFW_SAME_PERSON_BY_EYE and b in LFW_SAME_PERSON_BY_EYE)])
    return {
        "detected": len(keys),
        "same_person_by_eye": sorted(round(s, 3) for s in same),
        "other_pairs": {"pairs": int(others.size), "max": float(others.max()), "p99": float(np.percentile(others, 99)),
                        "at_or_above_threshold": int(np.sum(others >= threshold))},
        "top_pairs": [(round(s, 3), a, b) for s, a, b in sorted(pairs, reverse=True)[:8]],
    }


def summarise(genuine: np.ndarray, impostor: np.ndarray, documented: float, reference: float) -> dict:
    def rates(t):
        return {"threshold": t, "false_reject": float(np.mean(genuine < t)), "false_accept": float(np.mean(impostor >= t))}

    return {
        "genuine": {"pairs": int(genuine.size), "min": float(genuine.min()), "p1": float(np.percentile(genuine, 1)),
                    "p5": float(np.percentile(genuine, 5)), "mean": float(genuine.mean())},
        "impostor": {"pairs": int(impostor.size), "max": float(impostor.max()), "p99": float(np.percentile(impostor, 99)),
                     "mean": float(impostor.mean()), "std": float(impostor.std())},
        "gap": float(genuine.min() - impostor.max()),
        "rates": [rates(t) for t in CANDIDATE_THRESHOLDS],
        "reference": reference,
        "rule": rule_threshold(impostor, reference),
        "documented": rates(documented),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="minicnn", choices=("minicnn", "onnxruntime"))
    parser.add_argument("--models", nargs="+", default=list(RECOGNITION_MODELS), choices=RECOGNITION_MODELS)
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    photos = identity_photos()
    embeddings = embed_variants(photos, args.backend, args.models)
    report = {"backend": args.backend, "identities": list(photos), "variants": list(VARIANTS), "models": {}}
    for model in args.models:
        genuine, impostor = pair_similarities(embeddings[model])
        summary = summarise(genuine, impostor, THRESHOLDS[model], REFERENCE_THRESHOLDS[model])
        report["models"][model] = summary
        g, i = summary["genuine"], summary["impostor"]
        print(f"\n## {model} ({args.backend}; {len(photos)} identities x {len(VARIANTS)} variants)")
        print(f"genuine  pairs {g['pairs']:5d}: min {g['min']:.3f}  p1 {g['p1']:.3f}  p5 {g['p5']:.3f}  mean {g['mean']:.3f}")
        print(f"impostor pairs {i['pairs']:5d}: max {i['max']:.3f}  p99 {i['p99']:.3f}  mean {i['mean']:.3f}  std {i['std']:.3f}")
        print(f"gap (genuine min - impostor max): {summary['gap']:.3f}")
        print("| threshold | false reject | false accept |\n|---|---|---|")
        for r in summary["rates"]:
            print(f"| {r['threshold']:.3f} | {100 * r['false_reject']:.2f} % | {100 * r['false_accept']:.2f} % |")
        print(f"rule: max(reference {summary['reference']}, next 0.05 above the impostor max) = {summary['rule']}")
        d = summary["documented"]
        print(f"documented threshold {d['threshold']}: false reject {100 * d['false_reject']:.2f} %, "
              f"false accept {100 * d['false_accept']:.2f} %")
    lfw = lfw_embeddings(args.backend, args.models)
    for model in args.models:
        summary = lfw_summary(lfw[model], THRESHOLDS[model])
        report["models"][model]["lfw_subset"] = summary
        o = summary["other_pairs"]
        print(f"\n## {model}: lfw_subset (25x25 gray, upscaled 4x; {summary['detected']} of 100 faces detected)")
        print(f"the 4 photos of one man (by eye): 6 pairs, similarities {summary['same_person_by_eye']}")
        print(f"all other pairs ({o['pairs']}, identities unknown): max {o['max']:.3f}  p99 {o['p99']:.3f}  "
              f">= threshold {THRESHOLDS[model]}: {o['at_or_above_threshold']}")
        print(f"top pairs (similarity, index, index): {summary['top_pairs']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
