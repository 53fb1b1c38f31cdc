"""y = x @ W_hat for a quantized kernel (xlt.quant.rtn format), with a fused Pallas path.

`quant_matmul` is what models call. It picks an implementation by backend (Mosaic GPU on
"gpu", Mosaic TPU on "tpu", otherwise XLA), falls back to XLA for shapes a kernel cannot
tile, and is a `jax.custom_vjp` so that PEQA can train the scales: the backward pass is
plain XLA (dx = dy @ W_hat^T; dscales from x^T dy), the codes and zeros are frozen integers
and get float0 cotangents. See docs/quant_kernels.md.
"""
from __future__ import annotations

import functools
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from xlt.quant import rtn

log = logging.getLogger(__name__)

IMPLS = ("xla", "gpu", "tpu")


def quant_matmul_reference(x: jax.Array, codes: jax.Array, scales: jax.Array,
                           zeros: jax.Array) -> jax.Array:
  """x @ dequantize(W) entirely in float32 (the test oracle); returns float32 [..., N]."""
  k = x.shape[-1]
  w = rtn.dequantize({"codes": codes, "scales": scales, "zeros": zeros}, k)  # [K, N]
  return jnp.dot(x.astype(jnp.float32), w, precision=jax.lax.Precision.HIGHEST)


def _xla(x2: jax.Array, codes, scales, zeros) -> jax.Array:
  """Dequantize to x's dtype, then one dot accumulating in float32: [M, K] -> [M, N]."""
  w = rtn.dequantize({"codes": codes, "scales": scales, "zeros": zeros}, x2.shape[-1],
                     dtype=x2.dtype)  # [K, N]
  return jax.lax.dot_general(x2, w, (((1,), (0,)), ((), ())),
                             precision=jax.lax.Precision.HIGHEST,
                             preferred_element_type=jnp.float32).astype(x2.dtype)


def kernel_module(impl: str):
  """The Pallas kernel module of "gpu" or "tpu" (imported lazily: each pulls in its backend)."""
  if impl == "gpu":
    from xlt.kernels import quant_matmul_gpu as module
  else:
    from xlt.kernels import quant_matmul_tpu as module
  return module


IMPL_ENV = "XLT_QUANT_MATMUL"  # e.g. XLT_QUANT_MATMUL=xla: skip the kernels everywhere


def resolve_impl(impl: str | None) -> str:
  """None -> $XLT_QUANT_MATMUL if set, else by `jax.default_backend()`: "gpu" and "tpu"
  get their kernel, anything else "xla"."""
  if impl is None and os.environ.get(IMPL_ENV):
    impl = os.environ[IMPL_ENV]
    if impl not in IMPLS:
      raise ValueError(f"${IMPL_ENV}={impl!r}: expected one of {IMPLS}")
  if impl is None:
    backend = jax.default_backend()
    return backend if backend in ("gpu", "tpu") else "xla"
  if impl not in IMPLS:
    raise ValueError(f"impl must be None or one of {IMPLS}, got {impl!r}")
  return impl


def _forward(x2, codes, scales, zeros, impl: str, interpret) -> jax.Array:
  """[M, K] -> [M, N] in x's dtype by `impl`, or by XLA when the kernel cannot tile it."""
  if impl != "xla":
    module = kernel_module(impl)
    m, k = x2.shape
    why_not = module.unsupported(m, k, codes.shape, scales.shape, x2.dtype)
    if why_not is None:
      return module.quant_matmul(x2, codes, scales, zeros, interpret=interpret)
    log.debug("quant_matmul: %s kernel cannot tile x %s, codes %s, scales %s (%s); using XLA",
              impl, x2.shape, codes.shape, scales.shape, why_not)
  return _xla(x2, codes, scales, zeros)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _qmm(x2, codes, scales, zeros, impl, interpret):
  return _forward(x2, codes, scales, zeros, impl, interpret)


def _qmm_fwd(x2, codes, scales, zeros, impl, interpret):
  return _forward(x2, codes, scales, zeros, impl, interpret), (x2, codes, scales, zeros)


def _qmm_bwd(impl, interpret, residuals, dy):
  """dx = dy @ W_hat^T; dscales[g, n] = sum_{k in g} (x^T dy)[k, n] (q[k, n] - z[g, n])."""
  del impl, interpret
  x2, codes, scales, zeros = residuals
  k = x2.shape[-1]
  groups, n = scales.shape
  dy = dy.astype(jnp.float32)  # [M, N]
  w = rtn.dequantize({"codes": codes, "scales": scales, "zeros": zeros}, k)  # [K, N] f32
  hi = jax.lax.Precision.HIGHEST
  dx = jnp.dot(dy, w.T, precision=hi)  # [M, K]
  xty = jnp.dot(x2.astype(jnp.float32).T, dy, precision=hi)  # [K, N]
  q = rtn.unpack(codes, k).astype(jnp.float32).reshape(groups, k // groups, n)  # [G, g, N]
  shifted = q - zeros.astype(jnp.float32)[:, None, :]
  dscales = (xty.reshape(groups, k // groups, n) * shifted).sum(axis=1)  # [G, N]
  return (dx.astype(x2.dtype), np.zeros(codes.shape, jax.dtypes.float0),
          dscales.astype(scales.dtype), np.zeros(zeros.shape, jax.dtypes.float0))


_qmm.defvjp(_qmm_fwd, _qmm_bwd)


def quant_matmul(x: jax.Array, codes: jax.Array, scales: jax.Array, zeros: jax.Array, *,
                 impl: str | None = None, interpret=False) -> jax.Array:
  """x [..., K] @ W_hat [K, N] -> [..., N] in x.dtype, accumulated in float32.

  codes uint8 [K/p, N] (p = K // codes.shape[0]), scales float [G, N], zeros uint8 [G, N].
  impl: None (by backend), "xla", "gpu" or "tpu"; a shape (or, for "gpu", a float32 x)
  the kernel cannot tile goes to XLA. interpret: run the Pallas kernel on CPU (True maps to
  each backend's interpreter; or pass `pltpu.InterpretParams(...)` etc.). Differentiable
  w.r.t. x and scales (codes and zeros get float0 cotangents).
  """
  k = x.shape[-1]
  if k % codes.shape[0] or k // codes.shape[0] not in (1, 2, 4):
    raise ValueError(f"codes {codes.shape} cannot hold {k} input rows")
  if scales.shape != zeros.shape or scales.shape[-1] != codes.shape[-1] or k % scales.shape[0]:
    raise ValueError(f"scales {scales.shape} / zeros {zeros.shape} do not fit codes "
                     f"{codes.shape} with K = {k}")
  lead = x.shape[:-1]
  x2 = x.reshape(-1, k)  # [M, K]
  y = _qmm(x2, codes, scales, zeros, resolve_impl(impl), interpret)  # [M, N] float32
  return y.astype(x.dtype).reshape(*lead, codes.shape[-1])
