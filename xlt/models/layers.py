"""T5 building blocks in Flax linen, with logical axis names on every parameter.

Einsum letters: b batch, q/k query/key length, l length, d embed (d_model),
h heads, e head dim (d_kv), f mlp (d_ff), v vocab.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from xlt.kernels.quant_matmul import quant_matmul
from xlt.models.config import T5Config
from xlt.quant import rtn

Initializer = Callable[..., jax.Array]
NEG_INF = -1e10  # additive mask value, as in T5X


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
  """Logical sharding constraint on an activation (a no-op without a mesh)."""
  return nn.with_logical_constraint(x, tuple(axes))


def fan_in_init(scale: float, in_axis, out_axis, distribution: str = "normal") -> Initializer:
  return nn.initializers.variance_scaling(scale, "fan_in", distribution, in_axis=in_axis,
                                          out_axis=out_axis)


class DenseGeneral(nn.Module):
  """y = x . kernel, contracting the last `contract_dims` input dims; no bias.

  The single place where a weight matmul happens, so other parameterisations replace it
  in one spot: with the config's quant_bits set and the module path matching its
  quant_pattern, the kernel is a quantized dict (xlt.quant.rtn) and the matmul is the
  fused dequantize-matmul (xlt.kernels.quant_matmul).
  """

  features: tuple[int, ...]
  kernel_axes: tuple[str, ...]
  config: T5Config
  contract_dims: int = 1
  kernel_init: Initializer = fan_in_init(1.0, 0, -1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n = self.contract_dims
    kernel_shape = tuple(x.shape[-n:]) + tuple(self.features)
    dtype = self.config.compute_dtype
    if quantized_here(self):
      k = int(np.prod(kernel_shape[:n]))
      qkernel = quantized_param(self, "kernel", self.kernel_init, kernel_shape, n,
                                (self.kernel_axes[0], self.kernel_axes[n]))
      y = quant_matmul(x.reshape(-1, k).astype(dtype), qkernel["codes"], qkernel["scales"],
                       qkernel["zeros"])  # [tokens, N]
      return y.reshape(x.shape[:-n] + tuple(self.features))
    kernel = self.param("kernel", nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
                        kernel_shape, self.config.weights_dtype)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    contract = (tuple(range(x.ndim - n, x.ndim)), tuple(range(n)))
    return lax.dot_general(x, kernel, (contract, ((), ())))


def quantized_here(module: nn.Module) -> bool:
  """Whether the config quantizes this module's weight (quant_bits, quant_pattern)."""
  quantizes = getattr(module.config, "quantizes", None)
  return quantizes is not None and quantizes("/".join(module.path))


def quantized_param(module: nn.Module, name: str, init: Initializer, shape: tuple[int, ...],
                    n_in: int, axes: tuple[str | None, str | None]) -> dict[str, jax.Array]:
  """A weight of `shape` ([*in, *out]) stored as a quantized [K, N] kernel (xlt.quant.rtn):
  initialised by quantizing `init`'s float weight; `axes` names K and N for sharding."""
  cfg = module.config
  k, n = int(np.prod(shape[:n_in])), int(np.prod(shape[n_in:]))

  def init_quantized(rng):
    w = init(rng, shape, jnp.float32).reshape(k, n)
    try:
      q = rtn.quantize(w, cfg.quant_bits, cfg.quant_group_size, cfg.weights_dtype)
    except ValueError as e:
      raise ValueError(f"quantizing {'/'.join(module.path)}/{name} {shape}: {e}; choose another "
                       f"{type(cfg).__name__}.quant_group_size or leave this weight out of "
                       "quant_pattern") from None
    return {"codes": nn.LogicallyPartitioned(q["codes"], axes),
            "scales": nn.LogicallyPartitioned(q["scales"], (None, axes[1])),
            "zeros": nn.LogicallyPartitioned(q["zeros"], (None, axes[1]))}

  return module.param(name, init_quantized)


class RMSNorm(nn.Module):
  """T5 LayerNorm: scale only, no mean subtraction, statistics in float32."""

  config: T5Config

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                       (x.shape[-1],), self.config.weights_dtype)
    x32 = x.astype(jnp.float32)
    variance = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * lax.rsqrt(variance + self.config.layer_norm_epsilon)
    return (scale.astype(jnp.float32) * y).astype(self.config.compute_dtype)


class Embed(nn.Module):
  """Token embedding table [vocab, embed]; also the tied output head when asked.
  `stddev` of the initial table: 1.0 for T5, 0.02 for LLaMA (HF's inits)."""

  config: T5Config
  stddev: float = 1.0

  def setup(self):
    cfg = self.config
    if quantized_here(self):  # stored as its transpose, a [embed, vocab] kernel (K = embed)
      def transposed_init(rng, shape, dtype):
        return nn.initializers.normal(self.stddev)(rng, shape[::-1], dtype).T
      self.embedding = quantized_param(self, "embedding", transposed_init,
                                       (cfg.d_model, cfg.vocab_size), 1, ("embed", "vocab"))
    else:
      self.embedding = self.param(
          "embedding",
          nn.with_logical_partitioning(nn.initializers.normal(self.stddev), ("vocab", "embed")),
          (cfg.vocab_size, cfg.d_model), cfg.weights_dtype)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    if rtn.is_quantized(self.embedding):
      columns = {key: jnp.take(v, tokens.reshape(-1), axis=1) for key, v in self.embedding.items()}
      x = rtn.dequantize(columns, self.config.d_model).T.reshape(tokens.shape + (-1,))
      x = x.astype(self.config.compute_dtype)  # [b, l, d]
    else:
      x = jnp.take(self.embedding, tokens, axis=0).astype(self.config.compute_dtype)  # [b, l, d]
    return constrain(x, ("batch", "length", "embed"))

  def attend(self, x: jax.Array) -> jax.Array:
    dtype = self.config.compute_dtype
    if rtn.is_quantized(self.embedding):
      q = self.embedding
      y = quant_matmul(x.reshape(-1, x.shape[-1]).astype(dtype), q["codes"], q["scales"],
                       q["zeros"])  # [tokens, v]
      return y.reshape(x.shape[:-1] + (-1,))
    table = self.embedding.astype(dtype)
    return jnp.einsum("bld,vd->blv", x.astype(table.dtype), table)


def relative_position_bucket(relative_position: jax.Array, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> jax.Array:
  """Maps key_pos - query_pos to T5's log-spaced buckets (same arithmetic as Mesh TF / HF)."""
  ret = jnp.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    ret += (relative_position > 0).astype(jnp.int32) * num_buckets
    n = jnp.abs(relative_position)
  else:
    n = -jnp.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  n_safe = jnp.maximum(n, max_exact).astype(jnp.float32)  # avoids log(0) where is_small anyway
  large = max_exact + (jnp.log(n_safe / max_exact) / np.log(max_distance / max_exact) *
                       (num_buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, num_buckets - 1)
  return ret + jnp.where(is_small, n, large)


class RelativePositionBias(nn.Module):
  """Learned per-head bias from bucketed relative positions, shared by a stack's layers."""

  config: T5Config
  bidirectional: bool

  @nn.compact
  def __call__(self, query_positions: jax.Array, key_positions: jax.Array) -> jax.Array:
    """query_positions [b, q] (or [1, q]), key_positions [k] -> bias [b, h, q, k] in float32."""
    cfg = self.config
    table = self.param(
        "rel_embedding",
        nn.with_logical_partitioning(fan_in_init(1.0, 0, 1), ("relpos_buckets", "heads")),
        (cfg.relative_attention_num_buckets, cfg.num_heads), cfg.weights_dtype)
    relative = key_positions[None, None, :] - query_positions[:, :, None]  # [b, q, k]
    buckets = relative_position_bucket(relative, self.bidirectional,
                                       cfg.relative_attention_num_buckets,
                                       cfg.relative_attention_max_distance)
    bias = jnp.take(table.astype(jnp.float32), buckets, axis=0)  # [b, q, k, h]
    return jnp.transpose(bias, (0, 3, 1, 2))


class MultiHeadAttention(nn.Module):
  """T5 attention: no 1/sqrt(d) scaling (folded into the query init), additive bias.

  With `decode=True` the keys and values are kept in the "cache" collection: the
  first call (model.init with the full decode length) sizes it, each later call
  appends one position.
  """

  config: T5Config

  @nn.compact
  def __call__(self, inputs_q: jax.Array, inputs_kv: jax.Array, bias: jax.Array, *,
               deterministic: bool, decode: bool = False) -> jax.Array:
    cfg = self.config
    heads, d_kv = cfg.num_heads, cfg.d_kv
    proj_axes = ("embed", "heads", "kv")
    query = DenseGeneral((heads, d_kv), proj_axes, cfg, name="query",
                         kernel_init=fan_in_init(1.0 / d_kv, 0, (1, 2)))(inputs_q)  # [b, q, h, e]
    key = DenseGeneral((heads, d_kv), proj_axes, cfg, name="key",
                       kernel_init=fan_in_init(1.0, 0, (1, 2)))(inputs_kv)  # [b, k, h, e]
    value = DenseGeneral((heads, d_kv), proj_axes, cfg, name="value",
                         kernel_init=fan_in_init(1.0, 0, (1, 2)))(inputs_kv)  # [b, k, h, e]
    query = constrain(query, ("batch", "length", "heads", "kv"))
    key = constrain(key, ("batch", "length", "heads", "kv"))
    value = constrain(value, ("batch", "length", "heads", "kv"))

    if decode:
      key, value = self._update_cache(key, value)

    logits = jnp.einsum("bqhe,bkhe->bhqk", query, key, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits + bias, axis=-1).astype(cfg.compute_dtype)  # [b, h, q, k]
    weights = nn.Dropout(cfg.dropout_rate, broadcast_dims=())(weights, deterministic=deterministic)
    out = jnp.einsum("bhqk,bkhe->bqhe", weights, value)  # [b, q, h, e]
    out = constrain(out, ("batch", "length", "heads", "kv"))
    return DenseGeneral((cfg.d_model,), ("heads", "kv", "embed"), cfg, contract_dims=2, name="out",
                        kernel_init=fan_in_init(1.0, (0, 1), 2))(out)  # [b, q, d]

  def _update_cache(self, key: jax.Array, value: jax.Array) -> tuple[jax.Array, jax.Array]:
    initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
    index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
    if not initialized:  # sizing call from model.init: nothing to append
      return key, value
    i = index.value
    cached_key.value = lax.dynamic_update_slice(cached_key.value, key, (0, i, 0, 0))
    cached_value.value = lax.dynamic_update_slice(cached_value.value, value, (0, i, 0, 0))
    index.value = i + key.shape[1]
    return cached_key.value, cached_value.value  # [b, max_len, h, e]


class MlpBlock(nn.Module):
  """Gated-GELU (T5.1.1/mT5: gelu(x wi_0) * (x wi_1)) or ReLU (T5) feed-forward."""

  config: T5Config

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    cfg = self.config
    init_in = fan_in_init(1.0, 0, 1, "truncated_normal")
    if cfg.feed_forward_proj == "gated-gelu":
      gate = DenseGeneral((cfg.d_ff,), ("embed", "mlp"), cfg, name="wi_0", kernel_init=init_in)(x)
      linear = DenseGeneral((cfg.d_ff,), ("embed", "mlp"), cfg, name="wi_1", kernel_init=init_in)(x)
      h = jax.nn.gelu(gate, approximate=True) * linear  # [b, l, f]
    else:
      h = jax.nn.relu(DenseGeneral((cfg.d_ff,), ("embed", "mlp"), cfg, name="wi",
                                   kernel_init=init_in)(x))
    h = constrain(h, ("batch", "length", "mlp"))
    h = nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
    return DenseGeneral((cfg.d_model,), ("mlp", "embed"), cfg, name="wo",
                        kernel_init=fan_in_init(1.0, 0, 1, "truncated_normal"))(h)
