"""Round-to-nearest asymmetric quantization of a [K, N] weight (x @ W) and its storage.

For a weight W [K, N] (K the input dimension, N the outputs) and a group size g dividing K
(g = K: one group, i.e. per output channel), each group of g rows of a column gets

  s0 = (max - min) / (2^b - 1)   with min <= 0 <= max (the range always holds 0)
  z  = round(-min / s0)          an integer in [0, 2^b - 1]
  q  = clamp(round(W / s0) + z, 0, 2^b - 1)
  W_hat = s * (q - z)            s starts at s0; PEQA trains s, q and z stay frozen.

Storage (a quantized kernel is a dict of these three arrays):
  codes   uint8 [K / p, N]   p = 8 // slot codes per byte: 4-bit p = 2, 2-bit p = 4; 3- and
                             8-bit one per byte (p = 1). Row r, slot j (bits j*8/p ...) holds
                             row j * K/p + r of q: the K axis is cut into p contiguous
                             slabs, so `x @ W_hat = sum_j x[:, slab j] @ slab_j` needs no
                             interleaving in a kernel.
  scales  float [G, N]       G = K / g
  zeros   uint8 [G, N]
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

BITS = (2, 3, 4, 8)
GROUP_SIZES = (0, 32, 64, 128, 256)  # 0: per output channel (one group of all K rows)


def codes_per_byte(bits: int) -> int:
  """p: 2 for 4-bit, 4 for 2-bit, 1 for 3- and 8-bit (3-bit codes are stored in a byte)."""
  if bits not in BITS:
    raise ValueError(f"bits must be one of {BITS}, got {bits}")
  return {2: 4, 4: 2}.get(bits, 1)


def group_count(k: int, group_size: int) -> int:
  """G for K input rows; group_size 0 means per output channel (G = 1)."""
  if group_size == 0:
    return 1
  if group_size < 0 or k % group_size:
    raise ValueError(f"group size {group_size} does not divide the input dimension {k}")
  return k // group_size


def pack(q: jax.Array, bits: int) -> jax.Array:
  """uint8 codes [K, N] in [0, 2^b) -> [K / p, N] (see the module docstring)."""
  p = codes_per_byte(bits)
  k = q.shape[0]
  if k % p:
    raise ValueError(f"{bits}-bit codes pack {p} per byte: the input dimension {k} must be a "
                     f"multiple of {p}")
  q = q.astype(jnp.uint8)
  if p == 1:
    return q
  slab = k // p
  width = 8 // p
  out = jnp.zeros((slab,) + q.shape[1:], jnp.uint8)
  for j in range(p):
    out = out | (q[j * slab:(j + 1) * slab] << (j * width)).astype(jnp.uint8)
  return out


def unpack(codes: jax.Array, k: int) -> jax.Array:
  """[K / p, N] uint8 -> [K, N] uint8 codes; p = k // codes.shape[0]."""
  p = k // codes.shape[0]
  if p * codes.shape[0] != k or p not in (1, 2, 4):
    raise ValueError(f"codes with {codes.shape[0]} rows cannot hold {k} input rows")
  if p == 1:
    return codes
  width = 8 // p
  mask = (1 << width) - 1
  return jnp.concatenate([(codes >> (j * width)) & mask for j in range(p)], axis=0)


def quantize(w: jax.Array, bits: int, group_size: int,
             scale_dtype=jnp.float32) -> dict[str, jax.Array]:
  """float [K, N] -> {"codes", "scales", "zeros"} by round-to-nearest (module docstring)."""
  k, n = w.shape
  g = group_count(k, group_size)
  top = 2 ** bits - 1
  grouped = w.astype(jnp.float32).reshape(g, k // g, n)  # [G, g, N]
  low = jnp.minimum(grouped.min(axis=1), 0.0)  # [G, N]
  high = jnp.maximum(grouped.max(axis=1), 0.0)
  s0 = (high - low) / top
  s0 = jnp.where(s0 > 0, s0, 1.0)  # an all-zero group: any scale reproduces it
  z = jnp.clip(jnp.round(-low / s0), 0, top)
  q = jnp.clip(jnp.round(grouped / s0[:, None, :]) + z[:, None, :], 0, top)
  return {"codes": pack(q.reshape(k, n).astype(jnp.uint8), bits),
          "scales": s0.astype(scale_dtype),
          "zeros": z.astype(jnp.uint8)}


def dequantize(qkernel: Mapping[str, jax.Array], k: int, dtype=jnp.float32) -> jax.Array:
  """{"codes", "scales", "zeros"} -> W_hat [K, N] = s * (q - z), computed in float32."""
  q = unpack(qkernel["codes"], k).astype(jnp.float32)  # [K, N]
  scales = qkernel["scales"].astype(jnp.float32)  # [G, N]
  zeros = qkernel["zeros"].astype(jnp.float32)
  g = scales.shape[0]
  w = scales[:, None, :] * (q.reshape(g, k // g, -1) - zeros[:, None, :])  # [G, K/G, N]
  return w.reshape(k, -1).astype(dtype)


def is_quantized(leaf) -> bool:
  """Whether a parameter value is a quantized kernel (a dict with codes/scales/zeros)."""
  return isinstance(leaf, Mapping) and {"codes", "scales", "zeros"} <= set(leaf)


def nbytes(tree) -> int:
  """Bytes of every array (or ShapeDtypeStruct) in a tree."""
  return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))
