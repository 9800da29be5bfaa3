"""``minicnn.kernels.cache_guard``: a cached kernel that calls another file's kernel sees that file's edits.

Each step runs in a fresh Python process, as a user's next session would,
on a throwaway package in a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CALLER = textwrap.dedent("""
    import sys
    from numba import njit
    from minicnn.kernels import cache_guard
    from . import callee

    @njit(cache=True)
    def caller():
        return callee.value() + 100

    cache_guard.forget_if_changed(sys.modules[__name__], [callee])
""")
CALLEE = textwrap.dedent("""
    from numba import njit

    @njit(cache=True)
    def value():
        return {}
""")


def _run(root: Path) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(Path(__file__).resolve().parents[1])])}
    out = subprocess.run([sys.executable, "-c", "import pkg.caller as c; print(c.caller())"], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_an_edit_of_a_called_kernel_is_compiled_again(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "caller.py").write_text(CALLER)
    (package / "callee.py").write_text(CALLEE.format(1))
    assert _run(tmp_path) == 101
    assert _run(tmp_path) == 101  # from the cache
    assert any(p.suffix == ".nbi" for p in (package / "__pycache__").iterdir())
    (package / "callee.py").write_text(CALLEE.format(2))
    assert _run(tmp_path) == 102
