"""``faceops weights``: list, fetch, verify and describe the model zoo.

    faceops weights list [--pack P]
    faceops weights fetch NAME... | --pack P [--pack Q] | --all   [--force] [--no-progress]
    faceops weights verify [NAME...]
    faceops weights info NAME

Exit code 0 on success, 1 when a download, conversion or checksum fails
(``fetch``) or when a file is missing or corrupt (``verify``), 2 for
unknown names.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from faceops import weights


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _cmd_list(args: argparse.Namespace) -> int:
    manifest = weights.load_manifest()
    selected = weights.names_in_pack(args.pack) if args.pack else weights.model_names() + weights.photo_names()
    print(f"cache: {weights.cache_dir()}")
    print(f"{'name':22} {'task':26} {'size':>9}  {'cached':7} {'packs':20} licence")
    for name in selected:
        entry = manifest["models"].get(name) or manifest["photos"][name]
        cached = (weights.cache_dir() / entry["file"]).is_file()
        task = entry.get("task", "photo")
        licence = entry["licence"]["name"]
        if entry["licence"].get("commercial_use") is False:
            licence = "NON-COMMERCIAL: " + licence
        print(f"{name:22} {task:26} {_human(entry['bytes']):>9}  {'yes' if cached else 'no':7} "
              f"{','.join(entry['packs']):20} {licence[:70]}")
    print("packs: " + ", ".join(manifest["packs"]))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    if not (args.names or args.pack or args.all):
        print("faceops weights fetch: name a model or photo, or use --pack P or --all", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        paths = weights.fetch(args.names, packs=args.pack or (), all=args.all, force=args.force,
                              progress=not args.no_progress)
    except weights.UnknownWeightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except weights.WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in paths.values())
    print(f"{len(paths)} files ready in {weights.cache_dir()} ({_human(total)}), "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        status = weights.verify(args.names or None)
    except weights.UnknownWeightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, state in status.items():
        print(f"{name:22} {state}")
    bad = [n for n, s in status.items() if s != "ok"]
    if bad:
        print(f"{len(bad)} of {len(status)} files missing or corrupt; run `faceops weights fetch {' '.join(bad)}`",
              file=sys.stderr)
        return 1
    print(f"all {len(status)} files match their sha256")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        info = weights.model_info(args.name)
    except weights.UnknownWeightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="list, fetch and verify the model zoo (weights/manifest.json)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="every model and photo, its size, licence and whether it is cached")
    p.add_argument("--pack", help="only this pack")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("fetch", help="download, convert and verify models (skips files already verified)")
    p.add_argument("names", nargs="*", metavar="NAME", help="models or photos to fetch")
    p.add_argument("--pack", action="append", help="fetch every file of this pack (repeatable)")
    p.add_argument("--all", action="store_true", help="fetch every model and photo")
    p.add_argument("--force", action="store_true", help="download again even if the cached file is fine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("verify", help="re-hash cached files against the manifest (downloads nothing)")
    p.add_argument("names", nargs="*", metavar="NAME", help="default: every model and photo")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("info", help="print a model's manifest entry (input spec, outputs, licence) as JSON")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)
