"""Pallas kernels (GPU: Mosaic GPU, TPU: Mosaic), each beside a pure-JAX reference.

Every kernel also runs on CPU in interpret mode, which is how the tests check it.
"""
