"""Fused dequantize-matmul for Hopper GPUs (Pallas Mosaic GPU): y = x @ W_hat.

One CTA (one warpgroup) per output tile [bm, bn] (kernel grid (N / bn, M / bm)); inside,
`plgpu.emit_pipeline` streams the K axis through shared memory with TMA, as a 2-D pipeline
grid (p, (K/p) / bk): step (j, kb) brings the x block at column block j * nk + kb (nk =
(K/p) / bk), the packed codes block at row block kb, and the scale and zero rows of those K rows.
Because xlt.quant.rtn packs K as p contiguous slabs, the same codes block serves all p
slabs; step j just takes bits j * 8/p ... of it. The codes are unpacked with a shift and a
mask (in int32: Mosaic GPU lowers no 8-bit arithmetic), dequantized as s * (q - z) in
float32, cast to x's dtype, stored to a swizzled SMEM tile [bk, bn], and fed to
`plgpu.wgmma` (B from SMEM) accumulating in float32 registers. A block holds one group's
rows or up to 4 whole groups (g < bk), whose rows then pick their scale by an iota select.

Shape rules (`unsupported`): N a multiple of 64; bk in (128, 64) (the 64-row register
tile) dividing K/p and fitting g; M is padded up to the wgmma tile (only x is padded).
bf16 / f16 x only: Hopper wgmma takes 32-bit operands only as K-major tf32 and W is
N-major here, so float32 x goes to XLA.

What was verified, and what was not (no GPU was available when this was written):
  * verified on CPU: results against the float32 reference under the Mosaic GPU
    interpreter (interpret=True here means `InterpretGPUParams()`, which simulates SMEM,
    TMA copies, barriers and wgmma; plain `interpret=True` has no rule for TMA copies);
  * verified on CPU: the kernel lowers to a `mosaic_gpu` custom call for CUDA
    (`jax.jit(f).trace(...).lower(lowering_platforms=("cuda",))`, which runs the Pallas to
    Mosaic GPU lowering, including the SMEM transform checks of wgmma);
  * NOT verified: PTX compilation and execution on a Hopper GPU, register pressure, speed.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 128
MAX_CONCURRENT_STEPS = 2


def interpret_params():
  """The Mosaic GPU interpreter's parameters (public in newer jax, private in 0.10)."""
  params = getattr(plgpu, "InterpretGPUParams", None)
  if params is None:
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams as params
  return params()


def _blocks(m: int, k: int, codes_shape, scales_shape, dtype, block_n: int, block_k: int):
  """(bn, bk) for this shape, or a reason string."""
  kp, n = codes_shape
  g = k // scales_shape[0]
  if dtype is not None and jnp.dtype(dtype).itemsize != 2:
    return (f"x is {jnp.dtype(dtype).name}: Hopper wgmma takes 32-bit operands only as "
            "K-major tf32, so this kernel is for bf16 / f16")
  bn = next((b for b in (block_n, 64) if n % b == 0 and b % 64 == 0), None)
  if bn is None:
    return f"N = {n} is not a multiple of 64"
  # bk: a multiple of the 64-row WGMMA register tile; its rows lie in one group, or hold
  # whole groups (at most 4, each selected by row below).
  bk = next((b for b in (block_k, 64) if b % 64 == 0 and kp % b == 0
             and (g % b == 0 or (b % g == 0 and b // g <= 4))), None)
  if bk is None:
    return f"no K block in ({block_k}, 64) divides K/p = {kp} and fits group size {g}"
  return bn, bk


def unsupported(m: int, k: int, codes_shape, scales_shape, dtype=None,
                block_n: int = BLOCK_N, block_k: int = BLOCK_K) -> str | None:
  """Why this kernel cannot tile the shape (None: it can)."""
  blocks = _blocks(m, k, codes_shape, scales_shape, dtype, block_n, block_k)
  return blocks if isinstance(blocks, str) else None


def _smem_transforms(dtype, minor: int):
  """Tiling + swizzle that wgmma wants for a [rows, minor] SMEM operand."""
  bits = jnp.dtype(dtype).itemsize * 8
  swizzle = plgpu.find_swizzle(minor * bits)
  return (plgpu.TilingTransform((8, swizzle * 8 // bits)), plgpu.SwizzleTransform(swizzle))


def quant_matmul(x: jax.Array, codes: jax.Array, scales: jax.Array, zeros: jax.Array, *,
                 interpret=False, block_m: int = BLOCK_M, block_n: int = BLOCK_N,
                 block_k: int = BLOCK_K) -> jax.Array:
  """x [M, K] @ W_hat -> [M, N] in x.dtype (float32 accumulation). See `unsupported`."""
  m, k = x.shape
  kp, n = codes.shape
  p = k // kp
  g = k // scales.shape[0]
  blocks = _blocks(m, k, codes.shape, scales.shape, x.dtype, block_n, block_k)
  if isinstance(blocks, str):
    raise ValueError(blocks)
  bn, bk = blocks
  bm = block_m if m > 64 else 64  # the wgmma tile is 64 rows per warpgroup
  nk = kp // bk
  m_pad = -m % bm
  xp = jnp.pad(x, ((0, m_pad), (0, 0))) if m_pad else x  # [M', K]
  scales = scales.astype(jnp.float32)  # [G, N]
  zeros = zeros.astype(jnp.float32)
  span = max(bk, g)  # K rows that one [ng, bn] block of scales covers
  ng = span // g

  def group_block(j, kb):  # block index (in units of ng rows) of rows j K/p + kb bk ...
    return ((j * kp + kb * bk) // span, 0)

  dtype = x.dtype
  width = 8 // p

  def step(idx, x_smem, codes_smem, scale_smem, zero_smem, w_smem, acc):
    j = idx[0]
    q = codes_smem[...].astype(jnp.int32)  # [bk, bn]; 8-bit arithmetic is not lowered
    if p > 1:
      q = lax.shift_right_logical(q, (j * width).astype(jnp.int32)) & ((1 << width) - 1)
    # Rows of the [ng, bn] block broadcast explicitly from 1-D, so that layout inference
    # gives them WGMMA.reduce(0); with ng > 1 groups, rows t g ... take row t.
    row = lax.broadcasted_iota(jnp.int32, (bk, bn), 0) if ng > 1 else None

    def per_row(ref):
      out = lax.broadcast_in_dim(ref[0], (bk, bn), (1,))
      for t in range(1, ng):
        out = jnp.where(row >= t * g, lax.broadcast_in_dim(ref[t], (bk, bn), (1,)), out)
      return out  # [bk, bn]
    w = (q.astype(jnp.float32) - per_row(zero_smem)) * per_row(scale_smem)
    w_smem[...] = w.astype(dtype)  # [bk, bn]
    plgpu.commit_smem()  # make the generic-proxy stores visible to wgmma
    plgpu.wgmma(acc, x_smem, w_smem)  # acc [bm, bn] += x [bm, bk] @ w [bk, bn]
    plgpu.wgmma_wait(0)  # w_smem is rewritten by the next step

  def body(x_gmem, codes_gmem, scales_gmem, zeros_gmem, o_gmem, w_smem, o_smem):
    ni, mi = lax.axis_index("n"), lax.axis_index("m")
    cols = pl.ds(ni * bn, bn)

    def with_acc(acc):
      pipeline = plgpu.emit_pipeline(
          lambda idx, *refs: step(idx, *refs, w_smem, acc),
          grid=(p, nk),
          in_specs=[
              plgpu.BlockSpec((bm, bk), lambda j, kb: (0, j * nk + kb),
                              transforms=_smem_transforms(dtype, bk)),
              plgpu.BlockSpec((bk, bn), lambda j, kb: (kb, 0)),
              plgpu.BlockSpec((ng, bn), group_block), plgpu.BlockSpec((ng, bn), group_block),
          ],
          max_concurrent_steps=MAX_CONCURRENT_STEPS)
      pipeline(x_gmem.at[pl.ds(mi * bm, bm)], codes_gmem.at[:, cols],
               scales_gmem.at[:, cols], zeros_gmem.at[:, cols])
      return acc[...]  # [bm, bn] f32

    # The interpreter keeps register (ACC) and SMEM allocations in separate scopes.
    y = pl.run_scoped(with_acc, plgpu.ACC((bm, bn), jnp.float32))
    o_smem[...] = y.astype(dtype)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(o_smem, o_gmem.at[pl.ds(mi * bm, bm), cols])
    plgpu.wait_smem_to_gmem(0)

  if interpret is True:
    interpret = interpret_params()
  kernel = plgpu.kernel(
      body,
      out_type=jax.ShapeDtypeStruct((m + m_pad, n), dtype),
      grid=(n // bn, (m + m_pad) // bm),
      grid_names=("n", "m"),
      # w tile [bk, bn] (wgmma's B) and the output tile [bm, bn], both swizzled.
      scratch_types=[plgpu.SMEM((bk, bn), dtype, transforms=_smem_transforms(dtype, bn)),
                     plgpu.SMEM((bm, bn), dtype, transforms=_smem_transforms(dtype, bn))],
      # Warpgroup semantics: Mosaic GPU infers register layouts (Lane would need them all).
      compiler_params=plgpu.CompilerParams(
          lowering_semantics=plgpu.LoweringSemantics.Warpgroup),
      interpret=interpret or None,
  )
  y = kernel(xp, codes, scales, zeros)  # [M', N]
  return y[:m] if m_pad else y
