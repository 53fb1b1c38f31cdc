"""Token cross-entropy with z-loss and label smoothing, and T5X loss normalisation.

Every loss is "sum of weighted per-token losses / denominator". The denominator is
computed once for the whole (global) batch, so gradient accumulation over
microbatches gives the same gradient as one big batch.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp

# Loss normalisation modes, as in T5X's `loss_normalizing_factor`.
NUM_REAL_TARGET_TOKENS = "num_real_target_tokens"
NUM_TOTAL_TARGET_TOKENS = "num_total_target_tokens"
AVERAGE_PER_SEQUENCE = "average_per_sequence"
_MODES = (NUM_REAL_TARGET_TOKENS, NUM_TOTAL_TARGET_TOKENS, AVERAGE_PER_SEQUENCE)


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """z_loss: coefficient of log(Z)^2; label_smoothing: mass spread on other tokens.

  normalization: one of the modes above, a float constant (T5X fine-tuning uses
  e.g. 233472 = 2048 * 114), or None for the plain sum.
  """

  z_loss: float = 1e-4
  label_smoothing: float = 0.0
  normalization: str | float | None = NUM_REAL_TARGET_TOKENS

  def __post_init__(self):
    n = self.normalization
    if isinstance(n, str) and n not in _MODES:
      raise ValueError(f"LossConfig.normalization={n!r}; expected one of {_MODES}, a float or None")


def token_cross_entropy(logits: jax.Array, targets: jax.Array, z_loss: float,
                        label_smoothing: float) -> tuple[jax.Array, jax.Array]:
  """logits [b, l, v] float32, targets [b, l] -> (loss [b, l], z_loss part [b, l]).

  With label smoothing the constant entropy of the smoothed target is subtracted,
  so a perfect prediction still scores 0 (as in T5X).
  """
  vocab = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  log_z = jax.nn.logsumexp(logits, axis=-1)  # [b, l]
  log_probs = logits - log_z[..., None]
  target_logp = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  if label_smoothing:
    normalizer = -(confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))
    nll = -(confidence - low) * target_logp - low * jnp.sum(log_probs, axis=-1) - normalizer
  else:
    nll = -target_logp
  z = z_loss * jnp.square(log_z)
  return nll + z, z


def token_weights(batch: Mapping[str, jax.Array], normalization) -> jax.Array:
  """Per-token weights [b, l]; average_per_sequence gives each (packed) sequence mass 1."""
  weights = batch["decoder_loss_weights"].astype(jnp.float32)
  if normalization != AVERAGE_PER_SEQUENCE:
    return weights
  segments = batch.get("decoder_segment_ids")
  if segments is None:
    segments = (weights > 0).astype(jnp.int32)
  same = (segments[:, :, None] == segments[:, None, :]) & (segments[:, None, :] > 0)
  tokens_in_segment = jnp.sum(same * weights[:, None, :], axis=-1)  # [b, l]
  return jnp.where(tokens_in_segment > 0, weights / jnp.maximum(tokens_in_segment, 1.0), 0.0)


def loss_denominator(batch: Mapping[str, jax.Array], normalization) -> jax.Array:
  """The number the summed loss is divided by, for the whole batch given."""
  weights = batch["decoder_loss_weights"].astype(jnp.float32)
  if normalization is None:
    return jnp.float32(1.0)
  if isinstance(normalization, (int, float)):
    return jnp.float32(normalization)
  if normalization == NUM_REAL_TARGET_TOKENS:
    return jnp.maximum(jnp.sum(weights), 1.0)
  if normalization == NUM_TOTAL_TARGET_TOKENS:
    return jnp.float32(weights.size)
  segments = batch.get("decoder_segment_ids")
  if segments is None:
    return jnp.maximum(jnp.sum(jnp.any(weights > 0, axis=-1)), 1.0).astype(jnp.float32)
  # Packed: count distinct (row, segment) pairs that carry loss.
  max_segments = segments.shape[-1] + 1
  present = jax.nn.one_hot(segments * (weights > 0), max_segments).max(axis=1)[:, 1:]
  return jnp.maximum(jnp.sum(present), 1.0)


def summed_loss(logits: jax.Array, batch: Mapping[str, jax.Array],
                config: LossConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Weighted sums over this (micro)batch; divide by loss_denominator of the full batch."""
  targets = batch["decoder_target_tokens"]
  loss, z = token_cross_entropy(logits, targets, config.z_loss, config.label_smoothing)
  weights = token_weights(batch, config.normalization)
  real = batch["decoder_loss_weights"].astype(jnp.float32)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  sums = {
      "z_loss_sum": jnp.sum(z * weights),
      "correct_tokens": jnp.sum(correct * real),
      "target_tokens": jnp.sum(real),
  }
  return jnp.sum(loss * weights), sums
