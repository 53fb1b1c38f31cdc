"""Autoregressive decoding with a key/value cache, jit-compiled as one while_loop."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from xlt.models import Transformer

EOS_ID = 1
DECODER_START_ID = 0  # T5 starts decoding from the padding id


def init_cache(model: Transformer, batch_size: int, encoder_length: int,
               max_decode_length: int) -> Any:
  """Zeroed "cache" collection sized for `max_decode_length` decoder positions."""
  cfg = model.config

  def shapes():
    encoded = jnp.zeros((batch_size, encoder_length, cfg.d_model), cfg.compute_dtype)
    enc_tokens = jnp.ones((batch_size, encoder_length), jnp.int32)
    dec_tokens = jnp.zeros((batch_size, max_decode_length), jnp.int32)
    return model.init({"params": jax.random.key(0)}, encoded, enc_tokens, dec_tokens,
                      decode=True, method=Transformer.decode)["cache"]

  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(shapes))


def greedy_decode(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                  max_decode_length: int, eos_id: int = EOS_ID) -> jax.Array:
  """[b, l] input ids -> [b, max_decode_length] output ids, 0 after each row's EOS.

  The encoder runs once; each step feeds one token and appends its keys/values to the
  cache, so a step costs O(length) instead of a full forward pass.
  """
  batch = encoder_input_tokens.shape[0]
  encoded = model.apply({"params": params}, encoder_input_tokens, method=Transformer.encode)
  cache = init_cache(model, batch, encoder_input_tokens.shape[1], max_decode_length)

  def cond(carry):
    i, _, _, _, done = carry
    return (i < max_decode_length) & ~jnp.all(done)

  def body(carry):
    i, cache, out, current, done = carry
    positions = jnp.full((batch, 1), i, jnp.int32)
    logits, variables = model.apply(
        {"params": params, "cache": cache}, encoded, encoder_input_tokens, current[:, None],
        decode_positions=positions, decode=True, method=Transformer.decode, mutable=["cache"])
    token = jnp.argmax(logits[:, 0, :], axis=-1).astype(jnp.int32)  # [b]
    token = jnp.where(done, 0, token)
    out = out.at[:, i].set(token)
    return i + 1, variables["cache"], out, token, done | (token == eos_id)

  out = jnp.zeros((batch, max_decode_length), jnp.int32)
  start = jnp.full((batch,), DECODER_START_ID, jnp.int32)
  carry = (jnp.int32(0), cache, out, start, jnp.zeros((batch,), bool))
  return jax.lax.while_loop(cond, body, carry)[2]


def greedy_decode_without_cache(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                                max_decode_length: int, eos_id: int = EOS_ID) -> jax.Array:
  """Reference: re-runs the full teacher-forced decoder for every new token (slow)."""
  batch = encoder_input_tokens.shape[0]
  inputs = jnp.zeros((batch, max_decode_length), jnp.int32)
  out = jnp.zeros((batch, max_decode_length), jnp.int32)
  done = jnp.zeros((batch,), bool)
  for i in range(max_decode_length):
    logits = model.apply({"params": params}, encoder_input_tokens, inputs)
    token = jnp.where(done, 0, jnp.argmax(logits[:, i, :], axis=-1).astype(jnp.int32))
    out = out.at[:, i].set(token)
    if i + 1 < max_decode_length:
      inputs = inputs.at[:, i + 1].set(token)
    done = done | (token == eos_id)
  return out
