"""How the CUDA test modules choose between numba's simulator and a real GPU (shared by ``test_cuda_*.py``).

numba decides once per process whether ``numba.cuda`` is the simulator, so
a test module calls :func:`use_simulator_or_device` at import time, before
anything imports ``numba.cuda``.
"""

from __future__ import annotations

import ctypes.util
import os

import pytest

from minicnn import cuda_backend
from minicnn.errors import BackendUnavailableError


def use_simulator_or_device() -> None:
    """Switch on the CUDA simulator, or with ``NUMBA_ENABLE_CUDASIM=0`` require a real GPU; skip the module if
    neither is possible (a real GPU asked for and absent, or numba.cuda already committed to a device)."""
    if os.environ.get(cuda_backend.SIMULATOR_ENV) == "0":  # explicitly asked for the real device
        try:
            cuda_backend.check_available()
        except BackendUnavailableError as exc:
            pytest.skip(f"{cuda_backend.SIMULATOR_ENV}=0 and no usable GPU: {exc}", allow_module_level=True)
    else:
        try:
            cuda_backend.enable_simulator()
        except BackendUnavailableError as exc:  # numba.cuda already imported for a real GPU in this process
            pytest.skip(f"cannot switch to the CUDA simulator: {exc}", allow_module_level=True)


def driver_present() -> bool:
    """Whether this machine has a CUDA driver at all (the ``gpu`` tests need one)."""
    return ctypes.util.find_library("cuda") is not None or os.path.exists("/dev/nvidiactl")
