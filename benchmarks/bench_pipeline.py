"""Images per second of the whole pipeline, ``FaceAnalysis.get()``, on minicnn and onnxruntime.

For each pack (buffalo_s, open) and each backend (minicnn, onnxruntime), on
t1.jpg (1280x886, 6 faces) at det_size 640, in one interleaved run:

1. build every ``FaceAnalysis`` and time its first ``get()`` (for minicnn
   this includes Numba compilation, or loading it from the on-disk cache);
2. check that the backends agree (same face count, boxes IoU >= 0.99);
3. run rounds in which every configuration takes its turn, so a noisy
   neighbour slows all of them alike, and report the median time per image,
   images per second, and the minicnn / onnxruntime ratio per pack.

The whole pipeline per image is detection plus, per face, every other module
of the pack (6 faces: 6 embeddings, 6 landmark sets, ...), so it measures
what a user waits for, pre- and post-processing included.

    python benchmarks/bench_pipeline.py                  # both packs, 5 rounds
    python benchmarks/bench_pipeline.py --packs open --rounds 10
    python benchmarks/bench_pipeline.py --modules detection   # detection only

Compare ratios, not absolute times, across runs and machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceops import weights  # noqa: E402
from faceops.analysis import FaceAnalysis  # noqa: E402
from faceops.detection.nms import box_iou  # noqa: E402
from faceops.image_io import read_image  # noqa: E402

BACKENDS = ("minicnn", "onnxruntime")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs", nargs="+", default=["buffalo_s", "open"])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per configuration (median reported)")
    parser.add_argument("--modules", default=None, help="comma-separated modules to run (default: all of the pack)")
    parser.add_argument("--det-size", type=int, default=640)
    args = parser.parse_args()
    modules = args.modules.split(",") if args.modules else None

    img = read_image(weights.photo_path("t1"))
    print(f"t1.jpg {img.shape[1]}x{img.shape[0]}, det_size {args.det_size}, modules {modules or 'all'}, "
          f"{args.rounds} rounds")

    apps, results = {}, {}
    for pack in args.packs:
        for backend in BACKENDS:
            start = time.perf_counter()
            app = FaceAnalysis(pack=pack, allowed_modules=modules, backend=backend)
            app.prepare(det_size=(args.det_size, args.det_size))
            loaded = time.perf_counter()
            faces = app.get(img)
            first = time.perf_counter()
            apps[pack, backend] = app
            results[pack, backend] = faces
            print(f"  {pack:10} {backend:12} load {loaded - start:6.2f} s   first get() {first - loaded:6.2f} s   "
                  f"{len(faces)} faces   modules: {', '.join(app.models)}")

    for pack in args.packs:
        ours, ref = results[pack, "minicnn"], results[pack, "onnxruntime"]
        boxes = np.array([f.bbox for f in ours]).reshape(-1, 4)
        ref_boxes = np.array([f.bbox for f in ref]).reshape(-1, 4)
        same = len(ours) == len(ref) and (len(ours) == 0 or (box_iou(boxes, ref_boxes, plus_one=False).max(1) >= 0.99).all())
        print(f"  {pack}: minicnn and onnxruntime agree: {'yes' if same else 'NO'} ({len(ours)} vs {len(ref)} faces)")
        if not same:
            return 1

    times = {key: [] for key in apps}
    for _ in range(args.rounds):
        for key, app in apps.items():
            start = time.perf_counter()
            app.get(img)
            times[key].append(time.perf_counter() - start)

    print(f"\n{'pack':10} {'backend':12} {'median ms':>10} {'images/s':>9}")
    for (pack, backend), samples in times.items():
        median = statistics.median(samples)
        print(f"{pack:10} {backend:12} {median * 1e3:10.1f} {1 / median:9.2f}")
    print()
    for pack in args.packs:
        ratio = statistics.median(times[pack, "minicnn"]) / statistics.median(times[pack, "onnxruntime"])
        print(f"{pack}: minicnn takes {ratio:.2f}x the time of onnxruntime (target: within 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
