"""Numba CPU kernels and numba.cuda kernels, each kept beside the reference it is validated against."""
