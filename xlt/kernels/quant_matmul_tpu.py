"""Fused dequantize-matmul for TPU (Pallas Mosaic TPU): y = x @ W_hat, W_hat never in HBM.

Grid (M / bm, N / bn, S) with S = p * (K/p) / bk reduction steps, semantics ("parallel",
"parallel", "arbitrary"); a float32 VMEM scratch [bm, bn] accumulates over the S axis.
Step s reads packed codes rows (s % nk) * bk ... (nk = (K/p) / bk block rows per slab)
and slab j = s // nk of them (bits j * 8/p ...), i.e. original rows j*K/p + (s % nk)*bk
..., which are exactly x's column block s: the slab packing of xlt.quant.rtn makes the x
block index the step index, with no interleaving. Scales and zeros come in as [G, 1, N]
so that one block holds max(1, bk / g) groups whatever g is (1 row of a [G, N] block would
break the (8, 128) tiling rule); zeros are cast to float32 outside (G x N, small).

M and N need not be multiples of the blocks: rows and columns are independent, so a
partial edge block only produces output that Pallas drops. K/p must be a multiple of bk
(a multiple of 128), and a block must not straddle a group boundary unevenly (g a multiple
of bk, or bk a multiple of g with g % 8 == 0); `unsupported` says why a shape is refused.

Verified on CPU (tests/test_quant_matmul.py): results under interpret=
pltpu.InterpretParams() (what interpret=True maps to), and the Pallas -> Mosaic lowering
for a TPU v5e (`lower(lowering_platforms=("tpu",))`). NOT verified: the Mosaic compiler
in libtpu (e.g. the [bk, bn] -> [ng, g, bn] reshape), a run on a TPU chip, speed.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

BLOCK_M, BLOCK_N, BLOCK_K = 256, 512, 512


def _block_k(kp: int, g: int, block_k: int) -> int | None:
  """Largest multiple of 128 <= block_k dividing K/p that splits groups evenly."""
  for bk in range(block_k - block_k % 128, 0, -128):
    if kp % bk == 0 and (g % bk == 0 or (bk % g == 0 and g % 8 == 0)):
      return bk
  return None


def unsupported(m: int, k: int, codes_shape, scales_shape, dtype=None,
                block_k: int = BLOCK_K) -> str | None:
  """Why this kernel cannot tile the shape (None: it can)."""
  del m, dtype
  kp = codes_shape[0]
  g = k // scales_shape[0]
  if _block_k(kp, g, block_k) is None:
    return f"K/p = {kp} has no block (multiple of 128) that fits group size {g}"
  return None


def _kernel(x_ref, codes_ref, scales_ref, zeros_ref, o_ref, acc_ref, *, nk: int, p: int,
            g: int, compute_dtype):
  s = pl.program_id(2)

  @pl.when(s == 0)
  def _init():
    acc_ref[...] = jnp.zeros_like(acc_ref)

  bk, bn = codes_ref.shape
  codes = codes_ref[...].astype(jnp.int32)  # [bk, bn]
  if p > 1:
    width = 8 // p
    codes = (codes >> ((s // nk) * width)) & ((1 << width) - 1)  # slab s // nk
  q = codes.astype(jnp.float32)
  ng = scales_ref.shape[0]  # groups in this block: max(1, bk / g)
  if ng == 1:
    w = (q - zeros_ref[0]) * scales_ref[0]  # [bk, bn] - [1, bn]
  else:
    q = q.reshape(ng, g, bn)
    w = ((q - zeros_ref[...]) * scales_ref[...]).reshape(bk, bn)  # [ng, g, bn] - [ng, 1, bn]
  acc_ref[...] += jnp.dot(x_ref[...], w.astype(compute_dtype),
                          precision=jax.lax.Precision.HIGHEST,
                          preferred_element_type=jnp.float32)  # [bm, bn]

  @pl.when(s == pl.num_programs(2) - 1)
  def _store():
    o_ref[...] = acc_ref[...].astype(o_ref.dtype)


def quant_matmul(x: jax.Array, codes: jax.Array, scales: jax.Array, zeros: jax.Array, *,
                 interpret=False, block_m: int = BLOCK_M, block_n: int = BLOCK_N,
                 block_k: int = BLOCK_K) -> jax.Array:
  """x [M, K] @ W_hat -> [M, N] in x.dtype (float32 accumulation). See `unsupported`."""
  m, k = x.shape
  kp, n = codes.shape
  p = k // kp
  groups = scales.shape[0]
  g = k // groups
  bk = _block_k(kp, g, block_k)
  if bk is None:
    raise ValueError(unsupported(m, k, codes.shape, scales.shape, block_k=block_k))
  bm = m if m <= block_m else block_m  # a full dimension, or a multiple of 8
  bn = n if n <= block_n else block_n  # a full dimension, or a multiple of 128
  nk = kp // bk
  span = max(bk, g)  # rows one scales block covers
  ng = span // g
  scales3 = scales.astype(jnp.float32).reshape(groups, 1, n)  # [G, 1, N]
  zeros3 = zeros.astype(jnp.float32).reshape(groups, 1, n)
  group_spec = pl.BlockSpec((ng, 1, bn), lambda i, jn, s: (s * bk // span, 0, jn))
  if interpret is True:
    interpret = pltpu.InterpretParams()
  itemsize = x.dtype.itemsize
  cost = pl.CostEstimate(
      flops=2 * m * k * n, transcendentals=0,
      bytes_accessed=m * k * itemsize + codes.size + 8 * groups * n + m * n * itemsize)
  return pl.pallas_call(
      functools.partial(_kernel, nk=nk, p=p, g=g, compute_dtype=x.dtype),
      out_shape=jax.ShapeDtypeStruct((m, n), x.dtype),
      grid=(math.ceil(m / bm), math.ceil(n / bn), p * nk),
      in_specs=[pl.BlockSpec((bm, bk), lambda i, jn, s: (i, s)),  # x slab s // nk
                pl.BlockSpec((bk, bn), lambda i, jn, s: (s % nk, jn)),
                group_spec, group_spec],
      out_specs=pl.BlockSpec((bm, bn), lambda i, jn, s: (i, jn)),
      scratch_shapes=[pltpu.VMEM((bm, bn), jnp.float32)],
      compiler_params=pltpu.CompilerParams(
          dimension_semantics=("parallel", "parallel", "arbitrary")),
      cost_estimate=cost,
      interpret=interpret,
  )(x, codes, scales3, zeros3)
