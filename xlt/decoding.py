"""Autoregressive decoding with a key/value cache, each method one jit-able while_loop:
greedy, beam search, temperature sampling; `decode` picks one from a DecodeConfig.

Every method returns [b, max_decode_length] ids with 0 after a row's EOS. Beam width,
decode length, temperature and top_k shape the program, so they are static under jit.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from xlt.models import Llama, Transformer

EOS_ID = 1
DECODER_START_ID = 0  # T5 starts decoding from the padding id
METHODS = ("greedy", "beam", "sample")


def _cache_shapes(model: Transformer, batch_size: int, encoder_length: int,
                  max_decode_length: int) -> Any:
  """ShapeDtypeStructs of the "cache" collection (nothing is computed)."""
  cfg = model.config

  def shapes():
    encoded = jnp.zeros((batch_size, encoder_length, cfg.d_model), cfg.compute_dtype)
    enc_tokens = jnp.ones((batch_size, encoder_length), jnp.int32)
    dec_tokens = jnp.zeros((batch_size, max_decode_length), jnp.int32)
    return model.init({"params": jax.random.key(0)}, encoded, enc_tokens, dec_tokens,
                      decode=True, method=Transformer.decode)["cache"]

  return jax.eval_shape(shapes)


def init_cache(model: Transformer, batch_size: int, encoder_length: int,
               max_decode_length: int) -> Any:
  """Zeroed "cache" collection sized for `max_decode_length` decoder positions."""
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                      _cache_shapes(model, batch_size, encoder_length, max_decode_length))


def _decode_step(model: Transformer, params: Any, cache: Any, encoded: jax.Array,
                 encoder_input_tokens: jax.Array, tokens: jax.Array, i: jax.Array
                 ) -> tuple[jax.Array, Any]:
  """One cached decoder step: tokens [n] at position i -> (logits [n, vocab] f32, cache)."""
  positions = jnp.full((tokens.shape[0], 1), i, jnp.int32)
  logits, variables = model.apply(
      {"params": params, "cache": cache}, encoded, encoder_input_tokens, tokens[:, None],
      decode_positions=positions, decode=True, method=Transformer.decode, mutable=["cache"])
  return logits[:, 0, :].astype(jnp.float32), variables["cache"]


def _token_by_token(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                    max_decode_length: int, pick: Callable[[jax.Array, jax.Array], jax.Array],
                    eos_id: int) -> jax.Array:
  """The loop greedy and sampling share: pick(logits [b, v], step) -> next ids [b].
  A decoder-only model reads the inputs as its prompt (xlt.lm_decoding)."""
  if isinstance(model, Llama):
    from xlt import lm_decoding
    return lm_decoding.token_by_token(model, params, encoder_input_tokens, max_decode_length,
                                      pick, eos_id)
  batch = encoder_input_tokens.shape[0]
  encoded = model.apply({"params": params}, encoder_input_tokens, method=Transformer.encode)
  cache = init_cache(model, batch, encoder_input_tokens.shape[1], max_decode_length)

  def cond(carry):
    i, _, _, _, done = carry
    return (i < max_decode_length) & ~jnp.all(done)

  def body(carry):
    i, cache, out, current, done = carry
    logits, cache = _decode_step(model, params, cache, encoded, encoder_input_tokens,
                                 current, i)
    token = jnp.where(done, 0, pick(logits, i).astype(jnp.int32))  # [b]
    out = out.at[:, i].set(token)
    return i + 1, cache, out, token, done | (token == eos_id)

  out = jnp.zeros((batch, max_decode_length), jnp.int32)
  start = jnp.full((batch,), DECODER_START_ID, jnp.int32)
  carry = (jnp.int32(0), cache, out, start, jnp.zeros((batch,), bool))
  return jax.lax.while_loop(cond, body, carry)[2]


def greedy_decode(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                  max_decode_length: int, eos_id: int = EOS_ID) -> jax.Array:
  """[b, l] input ids -> [b, max_decode_length] output ids, 0 after each row's EOS.

  The encoder runs once; each step feeds one token and appends its keys/values to the
  cache, so a step costs O(length) instead of a full forward pass.
  """
  return _token_by_token(model, params, encoder_input_tokens, max_decode_length,
                         lambda logits, i: jnp.argmax(logits, axis=-1), eos_id)


@functools.partial(jax.jit, static_argnums=0)
def _teacher_forced_logits(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                           decoder_input_tokens: jax.Array) -> jax.Array:
  return model.apply({"params": params}, encoder_input_tokens, decoder_input_tokens)


def greedy_decode_without_cache(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                                max_decode_length: int, eos_id: int = EOS_ID) -> jax.Array:
  """Reference: re-runs the full teacher-forced decoder for every new token (slow)."""
  batch = encoder_input_tokens.shape[0]
  inputs = jnp.zeros((batch, max_decode_length), jnp.int32)
  out = jnp.zeros((batch, max_decode_length), jnp.int32)
  done = jnp.zeros((batch,), bool)
  for i in range(max_decode_length):
    logits = _teacher_forced_logits(model, params, encoder_input_tokens, inputs)
    token = jnp.where(done, 0, jnp.argmax(logits[:, i, :], axis=-1).astype(jnp.int32))
    out = out.at[:, i].set(token)
    if i + 1 < max_decode_length:
      inputs = inputs.at[:, i + 1].set(token)
    done = done | (token == eos_id)
  return out


def sample_decode(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                  max_decode_length: int, rng: jax.Array, *, temperature: float = 1.0,
                  top_k: int = 0, eos_id: int = EOS_ID) -> jax.Array:
  """Temperature sampling with the cache: [b, l] -> [b, max_decode_length], 0 after EOS.

  Each token is drawn from softmax(logits / temperature) restricted to the `top_k`
  largest logits (0: the whole vocabulary; ties at the k-th value are all kept).
  temperature 0 is argmax, i.e. greedy_decode's tokens. Step i draws with
  fold_in(rng, i), one independent draw per row, so a fixed rng reproduces the batch.
  """
  if temperature < 0:
    raise ValueError(f"sample_decode: temperature must be >= 0; got {temperature}")
  if top_k < 0:
    raise ValueError(f"sample_decode: top_k must be >= 0 (0: no truncation); got {top_k}")
  top_k = min(top_k, model.config.vocab_size)

  def pick(logits, i):  # [b, v] -> [b]
    if temperature == 0:
      return jnp.argmax(logits, axis=-1)
    logits = logits / temperature
    if top_k:
      # min rather than [:, -1:]: XLA:CPU turns a sliced top_k into a full sort.
      kth = jnp.min(jax.lax.top_k(logits, top_k)[0], axis=-1, keepdims=True)  # [b, 1]
      logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(jax.random.fold_in(rng, i), logits, axis=-1)

  return _token_by_token(model, params, encoder_input_tokens, max_decode_length, pick, eos_id)


def _length_penalty(length: jax.Array | float, alpha: float) -> jax.Array:
  """Google NMT / T5X brevity penalty ((5 + length) / 6) ** alpha; 1 for alpha 0."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def _cache_batch_axes(model: Transformer, batch_size: int, encoder_length: int,
                      max_decode_length: int) -> Any:
  """Per cache leaf, the axis that holds the batch (0 for [b, len, h, e], 1 for scanned
  [layers, b, len, h, e]), or None for cache_index, which all rows share. Found as the
  axis whose size follows the batch size, so no layer count can be mistaken for it."""
  shapes = [_cache_shapes(model, n, encoder_length, max_decode_length)
            for n in (batch_size, batch_size + 1)]

  def axis(a, b):
    grown = [d for d, (m, n) in enumerate(zip(a.shape, b.shape)) if m != n]
    return grown[0] if grown else None

  return jax.tree.map(axis, *shapes)


def beam_search(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
                max_decode_length: int, num_beams: int, *, length_penalty: float = 0.0,
                eos_id: int = EOS_ID) -> tuple[jax.Array, jax.Array]:
  """Beam search with the cache: [b, l] -> (best tokens [b, max_decode_length], 0 after
  EOS; their scores [b]).

  score = log p(tokens up to and including EOS) / ((5 + length) / 6) ** length_penalty,
  length counting EOS (Google NMT / T5X; length_penalty 0, the default, ranks by plain
  summed log-probability; larger values favour longer outputs). A hypothesis that never
  emits EOS is scored at length max_decode_length.

  As in T5X / Hugging Face, the search keeps `num_beams` alive and `num_beams`
  finished hypotheses. Each step extends every alive one by every token and takes the
  best 2 x num_beams candidates: the best num_beams that do not end in EOS stay alive
  (the cache follows them), and those ending in EOS that rank among the first
  num_beams join the finished set (Hugging Face's rule; with it one beam and
  length_penalty 0 give exactly greedy_decode's tokens). The loop stops at
  max_decode_length, or once in every row no alive hypothesis can reach the worst
  finished score (its log p can only fall, and no penalty exceeds that of
  max_decode_length; length_penalty must be >= 0 for that bound to hold).
  """
  if num_beams < 1:
    raise ValueError(f"beam_search: num_beams must be >= 1; got {num_beams}")
  if length_penalty < 0:
    raise ValueError(f"beam_search: length_penalty must be >= 0; got {length_penalty}")
  b, length = encoder_input_tokens.shape
  k, vocab = num_beams, model.config.vocab_size
  encoded = model.apply({"params": params}, encoder_input_tokens,
                        method=Transformer.encode)                        # [b, l, d]
  encoded = jnp.repeat(encoded, k, axis=0)                                # [b*k, l, d]
  enc_tokens = jnp.repeat(encoder_input_tokens, k, axis=0)                # [b*k, l]
  cache = init_cache(model, b * k, length, max_decode_length)
  batch_axes = _cache_batch_axes(model, b * k, length, max_decode_length)
  best_possible_penalty = _length_penalty(max_decode_length, length_penalty)
  row_start = jnp.arange(b)[:, None] * k                                  # [b, 1]

  def reorder(cache, beams):  # beams [b, k]: flat index into the b*k cache rows
    return jax.tree.map(
        lambda x, axis: x if axis is None else jnp.take(x, beams.reshape(-1), axis=axis),
        cache, batch_axes)

  def cond(carry):
    i, _, _, alive_logp, _, finished_scores = carry
    best_alive = alive_logp[:, 0] / best_possible_penalty                # [b]
    worst_finished = finished_scores[:, -1]                              # [b], -inf if not full
    return (i < max_decode_length) & ~jnp.all(worst_finished >= best_alive)

  def body(carry):
    i, cache, alive_seqs, alive_logp, finished_seqs, finished_scores = carry
    previous = alive_seqs[:, :, jnp.maximum(i - 1, 0)]
    current = jnp.where(i == 0, DECODER_START_ID, previous).reshape(-1)   # [b*k]
    logits, cache = _decode_step(model, params, cache, encoded, enc_tokens, current, i)
    log_probs = jax.nn.log_softmax(logits).reshape(b, k, vocab)          # [b, k, v]
    candidates = (alive_logp[:, :, None] + log_probs).reshape(b, k * vocab)
    top_logp, top_idx = jax.lax.top_k(candidates, 2 * k)                # [b, 2k], best first
    parents = top_idx // vocab                                           # [b, 2k]
    tokens = (top_idx % vocab).astype(jnp.int32)
    seqs = jnp.take_along_axis(alive_seqs, parents[:, :, None], axis=1)  # [b, 2k, t]
    seqs = seqs.at[:, :, i].set(tokens)
    ended = tokens == eos_id                                             # [b, 2k]

    # Alive: the best k candidates that go on (at most k of the 2k end, one per parent).
    alive_logp, keep = jax.lax.top_k(jnp.where(ended, -jnp.inf, top_logp), k)  # [b, k]
    alive_seqs = jnp.take_along_axis(seqs, keep[:, :, None], axis=1)     # [b, k, t]
    cache = reorder(cache, row_start + jnp.take_along_axis(parents, keep, axis=1))

    # Finished: the first k candidates that end in EOS, merged into the best k so far.
    # (A mask, not a slice: XLA:CPU turns sliced top_k results into a full sort.)
    first_k = jnp.arange(2 * k) < k                                      # [2k]
    new_scores = jnp.where(ended & first_k, top_logp, -jnp.inf)          # [b, 2k]
    new_scores = new_scores / _length_penalty(i + 1, length_penalty)
    finished_scores, best = jax.lax.top_k(
        jnp.concatenate([finished_scores, new_scores], axis=1), k)      # [b, k]
    finished_seqs = jnp.take_along_axis(
        jnp.concatenate([finished_seqs, seqs], axis=1), best[:, :, None], axis=1)
    return i + 1, cache, alive_seqs, alive_logp, finished_seqs, finished_scores

  seqs0 = jnp.zeros((b, k, max_decode_length), jnp.int32)
  # Only beam 0 is alive at the start, so the first step does not pick one token k times.
  alive_logp0 = jnp.tile(jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf), (b, 1))  # [b, k]
  carry = (jnp.int32(0), cache, seqs0, alive_logp0.astype(jnp.float32), seqs0,
           jnp.full((b, k), -jnp.inf, jnp.float32))
  i, _, alive_seqs, alive_logp, finished_seqs, finished_scores = jax.lax.while_loop(
      cond, body, carry)

  # Rows that reached max_decode_length also rank their alive (EOS-less) hypotheses.
  truncated = jnp.where(i >= max_decode_length,
                        alive_logp / _length_penalty(max_decode_length, length_penalty),
                        -jnp.inf)                                        # [b, k]
  scores = jnp.concatenate([finished_scores, truncated], axis=1)         # [b, 2k]
  seqs = jnp.concatenate([finished_seqs, alive_seqs], axis=1)            # [b, 2k, t]
  best = jnp.argmax(scores, axis=1)                                      # [b]
  return (jnp.take_along_axis(seqs, best[:, None, None], axis=1)[:, 0],
          jnp.take_along_axis(scores, best[:, None], axis=1)[:, 0])


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How generated tasks decode (gin: `eval/DecodeConfig`, `infer/DecodeConfig`).

  method: 'greedy' | 'beam' | 'sample'.
  beam: keeps `num_beams` hypotheses and returns the one with the best
    log p / ((5 + length) / 6) ** length_penalty (Google NMT / T5X; 0, the default,
    is plain summed log-probability; > 0 favours longer outputs).
  sample: draws from softmax(logits / temperature) over the `top_k` most likely tokens
    (0 = all), with jax.random.key(seed) unless `decode` is given an rng; temperature
    0 is greedy.
  """

  method: str = "greedy"
  num_beams: int = 4
  length_penalty: float = 0.0
  temperature: float = 1.0
  top_k: int = 0
  seed: int = 0

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"DecodeConfig.method must be one of {', '.join(METHODS)}; "
                       f"got {self.method!r}")
    for name in ("num_beams", "top_k", "seed"):  # gin may hand over 4.0 for 4
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"DecodeConfig.{name} must be an int; got {value!r}")
    for name in ("length_penalty", "temperature"):
      value = getattr(self, name)
      if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
        raise ValueError(f"DecodeConfig.{name} must be a number; got {value!r}")
    if self.num_beams < 1:
      raise ValueError(f"DecodeConfig.num_beams must be >= 1; got {self.num_beams}")
    if self.length_penalty < 0:
      raise ValueError("DecodeConfig.length_penalty must be >= 0 (0: no penalty); "
                       f"got {self.length_penalty}")
    if self.temperature < 0:
      raise ValueError(f"DecodeConfig.temperature must be >= 0 (0: greedy); "
                       f"got {self.temperature}")
    if self.top_k < 0:
      raise ValueError(f"DecodeConfig.top_k must be >= 0 (0: no truncation); got {self.top_k}")


def decode(model: Transformer, params: Any, encoder_input_tokens: jax.Array,
           max_decode_length: int, config: DecodeConfig = DecodeConfig(),
           rng: jax.Array | None = None) -> jax.Array:
  """[b, l] input ids -> [b, max_decode_length] output ids (0 after EOS), as `config` says.

  `rng` is used by sampling only (default jax.random.key(config.seed)).
  """
  if config.method == "beam":
    if isinstance(model, Llama):
      raise ValueError("DecodeConfig.method='beam' is implemented for encoder-decoder models "
                       "only; decode a decoder-only model with 'greedy' or 'sample'")
    return beam_search(model, params, encoder_input_tokens, max_decode_length,
                       config.num_beams, length_penalty=config.length_penalty)[0]
  if config.method == "sample":
    rng = jax.random.key(config.seed) if rng is None else rng
    return sample_decode(model, params, encoder_input_tokens, max_decode_length, rng,
                         temperature=config.temperature, top_k=config.top_k)
  return greedy_decode(model, params, encoder_input_tokens, max_decode_length)


def until_eos(ids: np.ndarray, eos_id: int = EOS_ID) -> np.ndarray:
  """The ids before the first EOS (the text of a decoded row)."""
  stop = np.nonzero(ids == eos_id)[0]
  return ids[:stop[0]] if stop.size else ids
