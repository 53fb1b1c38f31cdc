"""Decoding for decoder-only models (xlt.models.Llama): prompt, then the answer.

The prompt is what DecoderFeatureConverter trains on before the targets: the start id 0
followed by the task's inputs (with their EOS). Prompts of a batch differ in length, so
they are right-aligned: each row is left-padded, the padding is marked invalid in the KV
cache (`decode_valid`) and positions count from each row's first real token, so a row
decodes exactly as it would alone. One prefill call fills the cache with all prompts;
then each step feeds one token per row.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from xlt.models import llama

START_ID = 0  # seqio's DecoderFeatureConverter shifts the sequence right behind id 0


def right_aligned_prompts(inputs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """inputs [b, l] (0-padded on the right) -> (tokens, valid, positions) [b, l + 1] and
  the prompt lengths [b]: [START, inputs...] moved to the right end of each row."""
  b, l = inputs.shape
  lengths = jnp.sum(inputs != 0, axis=1) + 1  # [b], with the start id
  prompt = jnp.concatenate([jnp.full((b, 1), START_ID, inputs.dtype), inputs], axis=1)
  source = jnp.arange(l + 1)[None, :] - (l + 1 - lengths)[:, None]  # [b, l + 1]
  valid = source >= 0
  tokens = jnp.where(valid, jnp.take_along_axis(prompt, jnp.maximum(source, 0), axis=1), 0)
  return tokens.astype(jnp.int32), valid, jnp.maximum(source, 0).astype(jnp.int32), lengths


def token_by_token(model: llama.Llama, params: Any, inputs: jax.Array, max_decode_length: int,
                   pick: Callable[[jax.Array, jax.Array], jax.Array], eos_id: int) -> jax.Array:
  """[b, l] prompt ids -> [b, max_decode_length] ids, 0 after each row's EOS;
  pick(logits [b, v], step) -> next ids [b] (greedy or sampling, xlt.decoding)."""
  tokens, valid, positions, lengths = right_aligned_prompts(inputs)
  batch, width = tokens.shape
  cache = llama.init_cache(model.config, batch, width + max_decode_length)
  logits, variables = model.apply({"params": params, "cache": cache}, tokens,
                                  positions=positions, decode=True, decode_valid=valid,
                                  mutable=["cache"])
  last = logits[:, -1, :].astype(jnp.float32)  # [b, v]: the first answer token

  def cond(carry):
    i, _, _, _, done = carry
    return (i < max_decode_length) & ~jnp.all(done)

  def body(carry):
    i, cache, out, last, done = carry
    token = jnp.where(done, 0, pick(last, i).astype(jnp.int32))  # [b]
    out = out.at[:, i].set(token)
    logits, variables = model.apply({"params": params, "cache": cache}, token[:, None],
                                    positions=(lengths + i)[:, None], decode=True,
                                    mutable=["cache"])
    return (i + 1, variables["cache"], out, logits[:, 0, :].astype(jnp.float32),
            done | (token == eos_id))

  out = jnp.zeros((batch, max_decode_length), jnp.int32)
  carry = (jnp.int32(0), variables["cache"], out, last, jnp.zeros((batch,), bool))
  return jax.lax.while_loop(cond, body, carry)[2]


def greedy_without_cache(model: llama.Llama, params: Any, inputs: jax.Array,
                         max_decode_length: int, eos_id: int) -> jax.Array:
  """Reference for tests: each row alone, left-aligned, the whole sequence re-run for
  every token (causal, so the zeros after the current token change nothing)."""
  width = inputs.shape[1] + 1 + max_decode_length
  forward = jax.jit(lambda p, t: model.apply({"params": p}, t))
  rows = []
  for row in inputs:
    sequence = [START_ID] + [int(t) for t in row if t != 0]
    out = []
    for _ in range(max_decode_length):
      padded = jnp.asarray([sequence + [0] * (width - len(sequence))], jnp.int32)
      token = int(jnp.argmax(forward(params, padded)[0, len(sequence) - 1]))
      out.append(token)
      sequence.append(token)
      if token == eos_id:
        break
    rows.append(out + [0] * (max_decode_length - len(out)))
  return jnp.asarray(rows, jnp.int32)
