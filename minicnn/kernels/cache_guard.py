"""Keep Numba's on-disk cache honest when a kernel calls kernels of another file.

Numba's cache (``@njit(cache=True)``, files under ``__pycache__``) keys a
compiled function on its own source file only. A function that calls a
kernel of another module carries that kernel's machine code inside its
own, so after an edit of the other module it goes on running the old
kernel, silently. Seen here: ``jobs.run_chunk`` calls every kernel of
``cpu_blocked``; after ``cpu_blocked.pad_planes`` was rewritten (360 ->
38 us), a layer that ran it through a job still took the old 360 us until
the cache files were deleted.

:func:`forget_if_changed` guards a module against that: called at the end
of the module, it hashes the source files the module's kernels call into
and, if the hash differs from the one recorded beside the cache, empties
the cache of every compiled function of the module, so they compile again
from the current sources on their first call. It costs reading those files
once per process.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)


def forget_if_changed(module: ModuleType, dependencies: list[ModuleType]) -> bool:
    """Empty the on-disk cache of ``module``'s Numba functions if a dependency's source changed; True if it did."""
    cached = [f for f in vars(module).values() if getattr(f, "_cache", None) is not None and hasattr(f, "py_func")
              and getattr(f.py_func, "__module__", None) == module.__name__]
    caches = [f._cache for f in cached if hasattr(f._cache, "_cache_path")]
    if not caches:
        return False
    digest = hashlib.sha256()
    for dependency in dependencies:
        digest.update(Path(dependency.__file__).read_bytes())
    stamp = Path(caches[0]._cache_path) / f"{module.__name__.rsplit('.', 1)[-1]}.dependencies-sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return False
        for cache in caches:
            cache.flush()
        stamp.write_text(digest.hexdigest())
    except OSError as exc:  # a read-only install: Numba cannot write its cache there either
        log.debug("%s: cannot check the Numba cache against %s: %s", module.__name__,
                  [d.__name__ for d in dependencies], exc)
        return False
    log.debug("%s: %s changed; its cached compilations are dropped", module.__name__,
              [d.__name__ for d in dependencies])
    return True
