"""The T5.1.1 / mT5 encoder-decoder.

Parameter tree (names the HF converter and partitioning rules rely on):
  shared/embedding                                   [vocab, embed]
  encoder/relpos_bias/rel_embedding                  [buckets, heads]
  encoder/layers_{i}/{pre_attention_norm,pre_mlp_norm}/scale
  encoder/layers_{i}/attention/{query,key,value}/kernel [embed, heads, kv]; out/kernel [heads, kv, embed]
  encoder/layers_{i}/mlp/{wi_0,wi_1,wo}/kernel
  encoder/final_norm/scale
  decoder/... the same, with self_attention and cross_attention, and decoder/lm_head/kernel [embed, vocab]
With T5Config.scan_layers the layers_{i} of a stack are one `layers` subtree whose leaves
have a leading [layers] axis (encoder/layers/mlp/wo/kernel [layers, mlp, embed]).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from xlt.models.config import T5Config
from xlt.models.layers import (NEG_INF, DenseGeneral, Embed, MlpBlock, MultiHeadAttention,
                               RelativePositionBias, RMSNorm, constrain, fan_in_init)


def _mask_to_bias(mask: jax.Array) -> jax.Array:
  """Boolean [b, 1, q, k] attention mask -> additive float32 bias."""
  return jnp.where(mask, 0.0, NEG_INF).astype(jnp.float32)


def attention_mask(query_valid: jax.Array, key_valid: jax.Array,
                   query_segments: jax.Array | None = None,
                   key_segments: jax.Array | None = None) -> jax.Array:
  """[b, q] and [b, k] validity (and packed segment ids) -> boolean mask [b, 1, q, k]."""
  mask = query_valid[:, :, None] & key_valid[:, None, :]
  if query_segments is not None and key_segments is not None:
    mask &= query_segments[:, :, None] == key_segments[:, None, :]
  return mask[:, None, :, :]


# What the backward pass keeps of a layer (T5Config.remat_policy); the parameter tree is
# the same under every policy, so checkpoints move freely between them.
_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.checkpoint_dots,
}


def _rematerialised(layer_cls, policy: str, static_argnums: tuple[int, ...],
                    prevent_cse: bool = True):
  """The layer class, wrapped in nn.remat unless policy is "none" (argnums count self)."""
  if policy == "none":
    return layer_cls
  return nn.remat(layer_cls, policy=_REMAT_POLICIES[policy], static_argnums=static_argnums,
                  prevent_cse=prevent_cse)


def _apply_layers(layer_cls, cfg: T5Config, num_layers: int, static_argnums: tuple[int, ...],
                  x: jax.Array, *args) -> jax.Array:
  """x -> layer_{n-1}(... layer_0(x, *args) ..., *args): a Python loop of modules named
  layers_{i}, or with cfg.scan_layers one nn.scan over a module named `layers` whose
  parameters (and decode cache) are stacked on a leading "layers" axis."""
  if not cfg.scan_layers:
    layer = _rematerialised(layer_cls, cfg.remat_policy, static_argnums)
    for i in range(num_layers):
      x = layer(cfg, name=f"layers_{i}")(x, *args)
    return x
  # Inside scan, CSE prevention is unnecessary (the loop already keeps recomputation apart).
  layer = _rematerialised(layer_cls, cfg.remat_policy, static_argnums, prevent_cse=False)
  stack = nn.scan(layer, variable_axes={"params": 0, "cache": 0},
                  split_rngs={"params": True, "dropout": True},
                  in_axes=(nn.broadcast,) * len(args), length=num_layers,
                  metadata_params={nn.PARTITION_NAME: "layers"})
  x, _ = stack(cfg, name="layers")(x, *args)
  return x


class EncoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array, deterministic: bool) -> jax.Array:
    cfg = self.config
    dropout = nn.Dropout(cfg.dropout_rate)
    h = RMSNorm(cfg, name="pre_attention_norm")(x)
    h = MultiHeadAttention(cfg, name="attention")(h, h, bias, deterministic=deterministic)
    x = x + dropout(h, deterministic=deterministic)
    h = RMSNorm(cfg, name="pre_mlp_norm")(x)
    h = MlpBlock(cfg, name="mlp")(h, deterministic=deterministic)
    x = x + dropout(h, deterministic=deterministic)
    x = constrain(x, ("batch", "length", "embed"))  # [b, l, d]
    return (x, None) if cfg.scan_layers else x  # nn.scan bodies return (carry, output)


class DecoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x: jax.Array, encoded: jax.Array, self_bias: jax.Array,
               cross_bias: jax.Array, deterministic: bool, decode: bool) -> jax.Array:
    cfg = self.config
    dropout = nn.Dropout(cfg.dropout_rate)
    h = RMSNorm(cfg, name="pre_self_attention_norm")(x)
    h = MultiHeadAttention(cfg, name="self_attention")(h, h, self_bias,
                                                       deterministic=deterministic, decode=decode)
    x = x + dropout(h, deterministic=deterministic)
    h = RMSNorm(cfg, name="pre_cross_attention_norm")(x)
    h = MultiHeadAttention(cfg, name="cross_attention")(h, encoded, cross_bias,
                                                        deterministic=deterministic)
    x = x + dropout(h, deterministic=deterministic)
    h = RMSNorm(cfg, name="pre_mlp_norm")(x)
    h = MlpBlock(cfg, name="mlp")(h, deterministic=deterministic)
    x = x + dropout(h, deterministic=deterministic)
    x = constrain(x, ("batch", "length", "embed"))  # [b, q, d]
    return (x, None) if cfg.scan_layers else x


class Encoder(nn.Module):
  config: T5Config
  embed: Embed

  @nn.compact
  def __call__(self, tokens: jax.Array, segment_ids: jax.Array | None, *,
               deterministic: bool) -> jax.Array:
    cfg = self.config
    length = tokens.shape[1]
    positions = jnp.arange(length)
    bias = RelativePositionBias(cfg, bidirectional=True, name="relpos_bias")(
        positions[None, :], positions)  # [1, h, l, l]
    valid = tokens > 0
    bias = bias + _mask_to_bias(attention_mask(valid, valid, segment_ids, segment_ids))
    x = self.embed(tokens)  # [b, l, d]
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x = _apply_layers(EncoderLayer, cfg, cfg.num_encoder_layers, (3,), x, bias, deterministic)
    x = RMSNorm(cfg, name="final_norm")(x)
    return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class Decoder(nn.Module):
  config: T5Config
  embed: Embed

  @nn.compact
  def __call__(self, encoded: jax.Array, encoder_tokens: jax.Array, decoder_tokens: jax.Array,
               encoder_segment_ids: jax.Array | None, decoder_segment_ids: jax.Array | None,
               decode_positions: jax.Array | None, *, deterministic: bool,
               decode: bool) -> jax.Array:
    """Returns logits [b, q, vocab] in float32.

    In decode mode `decoder_tokens` is [b, 1] and `decode_positions` [b, 1] holds the
    step index; the self-attention keys span the whole cache.
    """
    cfg = self.config
    relpos = RelativePositionBias(cfg, bidirectional=False, name="relpos_bias")
    encoder_valid = encoder_tokens > 0
    query_valid = jnp.ones(decoder_tokens.shape, bool)  # padded queries get no loss anyway
    if decode and decode_positions is not None:
      cache_len = self._cache_length()
      key_positions = jnp.arange(cache_len)
      self_mask = (key_positions[None, None, :] <= decode_positions[:, :, None])[:, None]
      self_bias = relpos(decode_positions, key_positions) + _mask_to_bias(self_mask)
    else:
      length = decoder_tokens.shape[1]
      positions = jnp.arange(length)
      causal = positions[:, None] >= positions[None, :]  # [q, k]
      self_mask = causal[None, None]
      if decoder_segment_ids is not None:
        self_mask = self_mask & attention_mask(query_valid, query_valid, decoder_segment_ids,
                                               decoder_segment_ids)
      self_bias = relpos(positions[None, :], positions) + _mask_to_bias(self_mask)
    cross_bias = _mask_to_bias(attention_mask(query_valid, encoder_valid, decoder_segment_ids,
                                              encoder_segment_ids))

    x = self.embed(decoder_tokens)  # [b, q, d]
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x = _apply_layers(DecoderLayer, cfg, cfg.num_decoder_layers, (5, 6), x, encoded, self_bias,
                      cross_bias, deterministic, decode)
    x = RMSNorm(cfg, name="final_norm")(x)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    if cfg.tie_word_embeddings:
      logits = self.embed.attend(x * cfg.d_model**-0.5)
    else:
      logits = DenseGeneral((cfg.vocab_size,), ("embed", "vocab"), cfg, name="lm_head",
                            kernel_init=fan_in_init(1.0, 0, 1))(x)
    return constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))  # [b, q, v]

  def _cache_length(self) -> int:
    cache = self.scope.root.variables().get("cache", {})
    try:
      if self.config.scan_layers:  # [layers, b, length, h, e]
        return cache["decoder"]["layers"]["self_attention"]["cached_key"].shape[2]
      return cache["decoder"]["layers_0"]["self_attention"]["cached_key"].shape[1]
    except KeyError as e:
      raise ValueError("decode=True needs a cache: call init_cache() first") from e


class Transformer(nn.Module):
  """Encoder-decoder with a shared input embedding and (by default) an untied head."""

  config: T5Config

  def setup(self):
    self.shared = Embed(self.config)
    self.encoder = Encoder(self.config, self.shared)
    self.decoder = Decoder(self.config, self.shared)

  def encode(self, encoder_input_tokens: jax.Array, encoder_segment_ids: jax.Array | None = None,
             *, enable_dropout: bool = False) -> jax.Array:
    """[b, l] token ids -> [b, l, d] encoder states."""
    return self.encoder(encoder_input_tokens, encoder_segment_ids,
                        deterministic=not enable_dropout)

  def decode(self, encoded: jax.Array, encoder_input_tokens: jax.Array,
             decoder_input_tokens: jax.Array, encoder_segment_ids: jax.Array | None = None,
             decoder_segment_ids: jax.Array | None = None,
             decode_positions: jax.Array | None = None, *, enable_dropout: bool = False,
             decode: bool = False) -> jax.Array:
    return self.decoder(encoded, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids,
                        decoder_segment_ids, decode_positions, deterministic=not enable_dropout,
                        decode=decode)

  def __call__(self, encoder_input_tokens: jax.Array, decoder_input_tokens: jax.Array,
               encoder_segment_ids: jax.Array | None = None,
               decoder_segment_ids: jax.Array | None = None, *,
               enable_dropout: bool = False) -> jax.Array:
    """Teacher-forced logits [b, q, vocab] (float32)."""
    encoded = self.encode(encoder_input_tokens, encoder_segment_ids,
                          enable_dropout=enable_dropout)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids,
                       decoder_segment_ids, enable_dropout=enable_dropout)


def init_params(config: T5Config, rng: jax.Array, batch_size: int = 1, input_length: int = 8,
                target_length: int = 8):
  """Boxed (logically annotated) parameters; wrap in jax.eval_shape for shapes only."""
  model = Transformer(config)
  enc = jnp.ones((batch_size, input_length), jnp.int32)
  dec = jnp.ones((batch_size, target_length), jnp.int32)
  return model.init({"params": rng}, enc, dec)["params"]
