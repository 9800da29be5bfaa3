"""The ``minicnn`` command: summary, run, compare, ops.

    minicnn summary model.onnx --shape 1,3,640,640
    minicnn run model.onnx --input x.npy --output out.npz
    minicnn compare model.onnx [--input x.npy]      # node-by-node against onnxruntime
    minicnn ops                                      # every op minicnn implements

Inputs: ``--input x.npy`` feeds a one-input model; ``--input name=x.npy``
(repeatable) names the input. Without ``--input``, ``compare`` and ``run``
make a seeded random float32 input of the file's shape (a dynamic batch
dim becomes 1; ``--shape`` for other dynamic dims). ``--json`` prints machine-readable output instead of tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from .errors import InputError, MiniCNNError
from .session import BACKENDS, InferenceSession


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape wants comma-separated integers like 1,3,640,640, got {text!r}")
    if any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"--shape dims must be positive, got {text!r}")
    return shape


def _load_array(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{p}: not a readable .npy file: {exc}") from exc


def build_feeds(sess: InferenceSession, inputs: list[str], shape: tuple[int, ...] | None, seed: int) -> dict:
    """Feeds from ``--input`` files, or seeded random arrays of the model's (or ``--shape``) shape."""
    expected = sess.get_inputs()
    feeds = {}
    for item in inputs:
        name, sep, path = item.partition("=")
        if not sep:
            if len(expected) != 1:
                raise InputError(f"the model has inputs {[a.name for a in expected]}: use --input NAME=FILE.npy")
            name, path = expected[0].name, item
        feeds[name] = _load_array(path)
    rng = np.random.default_rng(seed)
    for arg in expected:
        if arg.name in feeds:
            continue
        dims = shape if shape is not None and len(expected) == 1 else arg.shape
        if dims is not None and len(dims) > 1 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
            dims = [d if isinstance(d, int) and d > 0 else 1 for d in dims[:1]] + list(dims[1:])  # batch of 1
        if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
            raise InputError(f"input {arg.name!r} has dynamic shape {arg.shape}: pass --shape or --input")
        if arg.type != "tensor(float)":
            raise InputError(f"input {arg.name!r} is {arg.type}: pass it with --input (random data is float only)")
        feeds[arg.name] = rng.uniform(-1, 1, size=dims).astype(np.float32)
    return feeds


def cmd_summary(args) -> int:
    from .summary import format_summary, summarize, summary_json

    rows = summarize(args.model, args.shape)
    print(json.dumps(summary_json(rows), indent=1) if args.json else format_summary(rows, title=str(args.model)))
    return 0


def cmd_run(args) -> int:
    sess = InferenceSession(args.model, backend=args.backend)
    feeds = build_feeds(sess, args.input, args.shape, args.seed)
    names = [o.name for o in sess.get_outputs()]
    outputs = sess.run(None, feeds)
    if args.output:
        np.savez(args.output, **dict(zip(names, outputs)))
    stats = [
        {"name": n, "shape": list(o.shape), "dtype": str(o.dtype),
         "min": float(o.min()) if o.size else None, "max": float(o.max()) if o.size else None,
         "mean": float(o.mean()) if o.size and o.dtype.kind == "f" else None}
        for n, o in zip(names, outputs)
    ]
    if args.json:
        print(json.dumps({"outputs": stats, "saved_to": args.output}, indent=1))
    else:
        for s in stats:
            print(f"{s['name']}: {s['dtype']}{s['shape']} min {s['min']:.4g} max {s['max']:.4g}")
        if args.output:
            print(f"saved {len(outputs)} outputs to {args.output}")
    return 0


def cmd_compare(args) -> int:
    from .compare import compare, format_report

    sess = InferenceSession(args.model, backend=args.backend, optimize=not args.no_optimize)
    feeds = build_feeds(sess, args.input, args.shape, args.seed)
    report = compare(args.model, feeds, rtol=args.rtol, atol=args.atol, session=sess)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(format_report(report, only_problems=args.problems_only))
    return 0 if report.outputs_match else 1


def cmd_ops(args) -> int:
    from .ops.registry import OPS, supported_ops

    for op in supported_ops():
        fast = "numba" in OPS[op]
        print(f"{op:<24} {'reference + fast path' if fast else 'reference'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minicnn", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p, needs_backend=True):
        p.add_argument("model", help="the .onnx file")
        p.add_argument("--shape", type=_parse_shape, help="input shape for dynamic dims, e.g. 1,3,640,640")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if needs_backend:
            p.add_argument("--backend", choices=BACKENDS, default="numba")
            p.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy")
            p.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")

    p = sub.add_parser("summary", help="per-layer table: op, output shape, params, FLOPs")
    common(p, needs_backend=False)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("run", help="run a model on .npy inputs (or random ones)")
    common(p)
    p.add_argument("--output", help="save every output to this .npz")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="node-by-node comparison with onnxruntime; exit 1 on divergence")
    common(p)
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance (error / tensor scale)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance")
    p.add_argument("--no-optimize", action="store_true", help="keep every node of the file (no folding/fusion)")
    p.add_argument("--problems-only", action="store_true", help="list only diverging/fused tensors")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("ops", help="list the ops minicnn implements")
    p.set_defaults(func=cmd_ops)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except MiniCNNError as exc:
        print(f"minicnn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
