"""Load NumPy pickles safely and store them as .npz.

3DDFA_V2 ships two pickles: the 62-parameter mean/std and the BFM face
model (mean shape, shape and expression bases, triangles, keypoints).
Unpickling runs code: a pickle may name any importable callable (say
``os.system``) and call it with any arguments. :class:`NumpyOnlyUnpickler`
lets a pickle name only the few NumPy functions that rebuild arrays, so a
hostile file fails with :class:`UnsafePickleError` before anything runs.
We unpickle once, at fetch time, and store an .npz that ``np.load`` reads
without pickle at all (``allow_pickle=False``).

The .npz is written by hand, not with ``np.savez``, so that it is
byte-for-byte reproducible: ``np.savez`` stamps the current time into the
zip entries. Ours are stored uncompressed with a fixed date.
"""

from __future__ import annotations

import _codecs
import io
import pickle
import zipfile

import numpy as np

from . import ConversionError

try:  # NumPy >= 2 keeps the array-rebuilding functions in numpy._core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

# (module, name) a pickle may refer to -> the object it gets. Pickles written
# by NumPy 1.x say numpy.core, those by NumPy 2.x numpy._core; both mean the same.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Protocol 5 rebuilds an array with _frombuffer(data, dtype, shape, order).
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    # Protocols 0-2 have no bytes opcode: they pickle an array's raw data as
    # _codecs.encode(latin-1 text, "latin1"), and empty data as bytes().
    ("_codecs", "encode"): _codecs.encode,
    ("__builtin__", "bytes"): bytes,
    ("builtins", "bytes"): bytes,
}

NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


class UnsafePickleError(ConversionError, pickle.UnpicklingError):
    """The pickle names a global outside the NumPy array-rebuilding allow-list."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and plain containers, nothing else.

    Dicts, lists, tuples, strings and numbers need no globals (they have
    their own opcodes); arrays need the few entries of ``ALLOWED_GLOBALS``
    (old protocols also need ``_codecs.encode`` and ``bytes`` for raw data).
    Any other global, e.g. ``os.system`` or ``builtins.eval``, raises
    :class:`UnsafePickleError` at the moment the pickle names it, before it
    could be called.
    """

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"pickle refers to {module}.{name}, which is not a NumPy array-rebuilding function; refusing to load it"
            ) from None


def load_numpy_pickle(data: bytes):
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler` (NumPy arrays and containers only)."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A reproducible .npz (uncompressed zip, fixed dates, keys in sorted order) holding ``arrays``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            array_file = io.BytesIO()
            np.lib.format.write_array(array_file, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=NPZ_DATE)
            info.create_system = 3  # "Unix", whatever machine writes it
            info.external_attr = 0o644 << 16
            archive.writestr(info, array_file.getvalue())
    return buffer.getvalue()


def pickle_to_npz(data: bytes) -> bytes:
    """Convert a pickled ``dict[str, ndarray]`` into reproducible .npz bytes."""
    obj = load_numpy_pickle(data)
    if not isinstance(obj, dict):
        raise ConversionError(f"expected a pickled dict of arrays, got {type(obj).__name__}")
    arrays = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise ConversionError(f"entry {key!r} is a {type(value).__name__}, expected a str -> ndarray dict")
        if value.dtype.hasobject:
            raise ConversionError(f"array {key!r} has dtype object; only numeric arrays are stored")
        arrays[key] = value
    return npz_bytes(arrays)
