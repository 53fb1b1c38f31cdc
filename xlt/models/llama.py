"""A LLaMA-family decoder-only transformer (LLaMA-1/2 and their GQA variants).

Numerically the same model as Hugging Face's LlamaForCausalLM: pre-norm RMSNorm,
rotary position embeddings in HF's rotate_half layout (HF q/k weights load without a
permutation), SwiGLU MLP, grouped-query causal attention, untied or tied output head.

Parameter tree (names the HF converter and partitioning rules rely on):
  embed/embedding                                     [vocab, embed]
  layers_{i}/pre_attention_norm/scale                 [embed]
  layers_{i}/attention/query/kernel                   [embed, heads, kv]
  layers_{i}/attention/{key,value}/kernel             [embed, kv_heads, kv]
  layers_{i}/attention/out/kernel                     [heads, kv, embed]
  layers_{i}/pre_mlp_norm/scale                       [embed]
  layers_{i}/mlp/{wi_0 (gate), wi_1 (up)}/kernel      [embed, mlp]
  layers_{i}/mlp/wo/kernel (down)                     [mlp, embed]
  final_norm/scale                                    [embed]
  lm_head/kernel                                      [embed, vocab] (absent when tied)
With LlamaConfig.scan_layers the layers_{i} are one `layers` subtree with a leading
[layers] axis. Every weight matmul is an xlt.models.layers.DenseGeneral, the embedding (and tied head)
xlt.models.layers.Embed, so LlamaConfig.quant_* quantizes them as in T5 (docs/peqa.md).

Einsum letters: b batch, l/q/s length (query/key slot), d embed, n heads, k kv heads,
r query heads per kv head (n = k * r), e head dim, f mlp, v vocab.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from xlt.models.config import ModelConfigBase
from xlt.models.layers import NEG_INF, DenseGeneral, Embed, constrain, fan_in_init
from xlt.models.t5 import _apply_layers


@dataclasses.dataclass(frozen=True)
class LlamaConfig(ModelConfigBase):
  """Shape and numerics of a LLaMA decoder. Defaults are LLaMA-1 7B.

  `dtype` is the compute dtype, `param_dtype` the storage dtype (as in T5Config).
  `max_position_embeddings` is the trained context, recorded but not enforced.
  `dropout_rate`, `remat_policy` and `scan_layers` mean what they mean in T5Config.
  """

  vocab_size: int = 32000
  d_model: int = 4096
  num_heads: int = 32
  num_kv_heads: int = 32
  head_dim: int = 128
  d_ff: int = 11008
  num_layers: int = 32
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  max_position_embeddings: int = 2048
  tie_word_embeddings: bool = False
  dropout_rate: float = 0.0
  dtype: str = "bfloat16"
  param_dtype: str = "float32"
  remat_policy: str = "none"
  scan_layers: bool = False
  # PEQA quantization, as in T5Config (docs/peqa.md).
  quant_bits: int = 0
  quant_group_size: int = 128
  quant_pattern: str = ".*"

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "num_heads", "num_kv_heads", "head_dim", "d_ff",
                 "num_layers", "max_position_embeddings"):
      if getattr(self, name) <= 0:
        raise ValueError(f"LlamaConfig.{name} must be positive, got {getattr(self, name)}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"LlamaConfig.num_heads={self.num_heads} must be a multiple of "
                       f"num_kv_heads={self.num_kv_heads} (each kv head serves a group of "
                       "query heads)")
    if self.head_dim % 2:
      raise ValueError(f"LlamaConfig.head_dim={self.head_dim} must be even for rotary embeddings")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"LlamaConfig.dropout_rate must be in [0, 1), got {self.dropout_rate}")
    self.check_common()


# Published dimensions (Touvron et al. 2023; the released HF config.json files). LLaMA-2
# has the same shapes with rms_norm_eps=1e-5 and a 4096-token context.
LLAMA_SIZES: dict[str, LlamaConfig] = {
    "7b": LlamaConfig(),
    "13b": LlamaConfig(d_model=5120, num_heads=40, num_kv_heads=40, d_ff=13824, num_layers=40),
}

# Small enough for unit tests; grouped-query (2 query heads per kv head).
LLAMA_TINY = LlamaConfig(vocab_size=256, d_model=64, num_heads=4, num_kv_heads=2, head_dim=16,
                         d_ff=160, num_layers=2, max_position_embeddings=128, dtype="float32")


class LlamaRMSNorm(nn.Module):
  """x * rsqrt(mean(x^2) + eps) * scale, statistics in float32; HF casts the normalised x
  back to the compute dtype before scaling, and so does this."""

  config: LlamaConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                       (x.shape[-1],), cfg.weights_dtype)
    x32 = x.astype(jnp.float32)
    y = x32 * lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + cfg.rms_norm_eps)
    return y.astype(cfg.compute_dtype) * scale.astype(cfg.compute_dtype)


def apply_rotary(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotary embedding, HF layout: dim i pairs with i + e/2 (rotate_half), not 2i with 2i+1.

  x [b, l, n, e], positions [b, l] -> [b, l, n, e]; angles in float32.
  """
  e = x.shape[-1]
  inv_freq = 1.0 / (theta ** (jnp.arange(0, e, 2, dtype=jnp.float32) / e))  # [e/2]
  angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [b, l, e/2]
  angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]  # [b, l, 1, e]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  return (x.astype(jnp.float32) * jnp.cos(angles) + rotated * jnp.sin(angles)).astype(x.dtype)


class LlamaAttention(nn.Module):
  """Grouped-query causal self-attention with rotary q/k, scaled by head_dim**-0.5.

  With `decode=True` the rotated keys and the values live in the "cache" collection
  (as MultiHeadAttention does): the first call (model.init with the full decode length)
  sizes it, each later call appends its positions at the cache index; queries then see
  every cache slot up to their own.
  """

  config: LlamaConfig

  @nn.compact
  def __call__(self, x: jax.Array, positions: jax.Array | None, mask: jax.Array | None, *,
               deterministic: bool, decode: bool = False) -> jax.Array:
    """In decode mode `mask`, if given, is [b, q] validity of these positions (False:
    left padding of a shorter prompt), remembered in the cache so no query attends to it."""
    cfg = self.config
    n, k, e = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    init = fan_in_init(1.0, 0, (1, 2))
    query = DenseGeneral((n, e), ("embed", "heads", "kv"), cfg, name="query",
                         kernel_init=init)(x)  # [b, q, n, e]
    key = DenseGeneral((k, e), ("embed", "kv_heads", "kv"), cfg, name="key",
                       kernel_init=init)(x)  # [b, s, k, e]
    value = DenseGeneral((k, e), ("embed", "kv_heads", "kv"), cfg, name="value",
                         kernel_init=init)(x)  # [b, s, k, e]
    query = constrain(query, ("batch", "length", "heads", "kv"))
    key = constrain(key, ("batch", "length", "kv_heads", "kv"))
    value = constrain(value, ("batch", "length", "kv_heads", "kv"))

    b, length = x.shape[:2]
    if decode:
      index = self._cache_index()
      steps = index + jnp.arange(length)  # cache slots of these queries  [q]
      if positions is None:
        positions = jnp.broadcast_to(steps, (b, length))
    query = apply_rotary(query, positions, cfg.rope_theta)
    key = apply_rotary(key, positions, cfg.rope_theta)
    if decode:
      valid = jnp.ones((b, length), bool) if mask is None else mask.astype(bool)  # [b, q]
      key, value, valid = self._update_cache(key, value, valid, index)  # [b, max_len, ...]
      mask = (jnp.arange(key.shape[1])[None, :] <= steps[:, None])[None]  # [1, q, s]
      mask = mask & valid[:, None, :]  # [b, q, s]

    query = query.reshape(b, length, k, n // k, e)  # HF repeat_kv: head j*r + i uses kv head j
    logits = jnp.einsum("bqkre,bske->bkrqs", query, key,
                        preferred_element_type=jnp.float32) * e**-0.5
    logits = jnp.where(mask[:, None, None], logits, NEG_INF)
    weights = jax.nn.softmax(logits, axis=-1).astype(cfg.compute_dtype)  # [b, k, r, q, s]
    out = jnp.einsum("bkrqs,bske->bqkre", weights, value).reshape(b, length, n, e)
    out = constrain(out, ("batch", "length", "heads", "kv"))  # [b, q, n, e]
    return DenseGeneral((cfg.d_model,), ("heads", "kv", "embed"), cfg, contract_dims=2, name="out",
                        kernel_init=fan_in_init(1.0, (0, 1), 2))(out)  # [b, q, d]

  def _cache_index(self) -> jax.Array:
    if not self.has_variable("cache", "cache_index"):  # sizing call from model.init
      return jnp.array(0, jnp.int32)
    return self.get_variable("cache", "cache_index")

  def _update_cache(self, key: jax.Array, value: jax.Array, valid: jax.Array,
                    index: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
    cached_valid = self.variable("cache", "cached_valid", jnp.zeros, valid.shape, jnp.bool_)
    cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
    if not initialized:  # sizing call: nothing to append
      return key, value, valid
    cached_key.value = lax.dynamic_update_slice(cached_key.value, key, (0, index, 0, 0))
    cached_value.value = lax.dynamic_update_slice(cached_value.value, value, (0, index, 0, 0))
    cached_valid.value = lax.dynamic_update_slice(cached_valid.value, valid, (0, index))
    cache_index.value = index + key.shape[1]
    return cached_key.value, cached_value.value, cached_valid.value


class LlamaMlp(nn.Module):
  """SwiGLU: wo(silu(wi_0 x) * wi_1 x), HF's down(silu(gate(x)) * up(x))."""

  config: LlamaConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    init = fan_in_init(1.0, 0, 1, "truncated_normal")
    gate = DenseGeneral((cfg.d_ff,), ("embed", "mlp"), cfg, name="wi_0", kernel_init=init)(x)
    up = DenseGeneral((cfg.d_ff,), ("embed", "mlp"), cfg, name="wi_1", kernel_init=init)(x)
    h = constrain(jax.nn.silu(gate) * up, ("batch", "length", "mlp"))  # [b, l, f]
    return DenseGeneral((cfg.d_model,), ("mlp", "embed"), cfg, name="wo", kernel_init=init)(h)


class LlamaLayer(nn.Module):
  config: LlamaConfig

  @nn.compact
  def __call__(self, x: jax.Array, positions: jax.Array | None, mask: jax.Array | None,
               deterministic: bool, decode: bool) -> jax.Array:
    cfg = self.config
    dropout = nn.Dropout(cfg.dropout_rate)
    h = LlamaRMSNorm(cfg, name="pre_attention_norm")(x)
    h = LlamaAttention(cfg, name="attention")(h, positions, mask, deterministic=deterministic,
                                              decode=decode)
    x = x + dropout(h, deterministic=deterministic)
    h = LlamaMlp(cfg, name="mlp")(LlamaRMSNorm(cfg, name="pre_mlp_norm")(x))
    x = x + dropout(h, deterministic=deterministic)
    x = constrain(x, ("batch", "length", "embed"))  # [b, l, d]
    return (x, None) if cfg.scan_layers else x  # nn.scan bodies return (carry, output)


def segment_positions(segment_ids: jax.Array) -> jax.Array:
  """[b, l] packed segment ids -> each token's position within its own segment."""
  idx = jnp.broadcast_to(jnp.arange(segment_ids.shape[1]), segment_ids.shape)
  starts = jnp.concatenate([jnp.ones_like(segment_ids[:, :1], bool),
                            segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)
  return idx - lax.cummax(jnp.where(starts, idx, 0), axis=1)


class Llama(nn.Module):
  """Decoder-only LM: tokens [b, l] -> logits [b, l, vocab] (float32)."""

  config: LlamaConfig

  @nn.compact
  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, decode: bool = False,
               decode_valid: jax.Array | None = None,
               enable_dropout: bool = False) -> jax.Array:
    """Causal logits. `segment_ids` [b, l] (packed rows) keep each sequence to itself;
    `positions` default to the index within the segment (or, with decode=True, the
    cache slot). In decode mode tokens extend the cache, segment_ids must be None, and
    `decode_valid` [b, l] marks left padding (False) that no later token attends to, so
    prompts of different lengths decode in one batch (xlt.lm_decoding)."""
    cfg = self.config
    deterministic = not enable_dropout
    mask = None
    if decode:
      if segment_ids is not None:
        raise ValueError("Llama: decode=True does not take segment_ids (one sequence per row)")
      mask = decode_valid
    else:
      length = tokens.shape[1]
      mask = jnp.tril(jnp.ones((length, length), bool))[None]  # [1, q, s]
      if segment_ids is not None:
        mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])  # [b, q, s]
        if positions is None:
          positions = segment_positions(segment_ids)
      elif positions is None:
        positions = jnp.broadcast_to(jnp.arange(length), tokens.shape)

    table = Embed(cfg, stddev=0.02, name="embed")
    x = table(tokens)  # [b, l, d]
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x = _apply_layers(LlamaLayer, cfg, cfg.num_layers, (4, 5), x, positions, mask,
                      deterministic, decode)
    x = LlamaRMSNorm(cfg, name="final_norm")(x)
    if cfg.tie_word_embeddings:
      logits = table.attend(x)
    else:
      logits = DenseGeneral((cfg.vocab_size,), ("embed", "vocab"), cfg, name="lm_head",
                            kernel_init=fan_in_init(1.0, 0, 1))(x)
    return constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))  # [b, l, v]


def init_params(config: LlamaConfig, rng: jax.Array, batch_size: int = 1, length: int = 8,
                boxed: bool = False):
  """Parameters (unboxed unless `boxed`: the logically annotated tree that sharding reads);
  wrap in jax.eval_shape for shapes only."""
  tokens = jnp.ones((batch_size, length), jnp.int32)
  params = Llama(config).init({"params": rng}, tokens)["params"]
  return params if boxed else nn.meta.unbox(params)


def param_count(config: LlamaConfig) -> int:
  """Number of parameters, from shapes alone (nothing is allocated)."""
  abstract = jax.eval_shape(functools.partial(init_params, config), jax.random.key(0))
  return sum(x.size for x in jax.tree.leaves(abstract))


def init_cache(config: LlamaConfig, batch_size: int, max_length: int) -> Any:
  """Zeroed "cache" collection for decoding up to `max_length` positions."""
  model = Llama(config)
  tokens = jnp.zeros((batch_size, max_length), jnp.int32)
  shapes = jax.eval_shape(
      lambda: model.init({"params": jax.random.key(0)}, tokens, decode=True)["cache"])
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
