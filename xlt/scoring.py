"""`score_batch`: the summed log-probability of each row's target tokens given its input.

This is what rank classification ranks answer choices by (T5/T0: no length
normalisation by default). The batch is the model-feature batch of training, so a row
scores exactly the tokens its `decoder_loss_weights` mark: the target and its EOS.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from xlt import partitioning
from xlt.train_step import model_logits

Batch = Mapping[str, jax.Array]


def enc_dec_features(inputs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
  """Padded token ids [b, l] -> the unpacked EncDecFeatureConverter features (decoder
  inputs are the targets shifted right behind the start id 0). Here rather than in the
  data layer so that benchmarks build score batches without TensorFlow."""
  decoder_inputs = np.zeros_like(targets)
  decoder_inputs[:, 1:] = targets[:, :-1]
  return {"encoder_input_tokens": inputs.astype(np.int32),
          "decoder_input_tokens": decoder_inputs.astype(np.int32),
          "decoder_target_tokens": targets.astype(np.int32),
          "decoder_loss_weights": (targets != 0).astype(np.int32)}


def decoder_features(inputs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
  """Padded token ids [b, li], [b, lt] -> unpacked DecoderFeatureConverter features of
  length li + lt: each row's inputs then its targets, shifted right behind the start id 0,
  the loss (the score) on the targets only, as a decoder-only model was trained."""
  b, li = inputs.shape
  length = li + targets.shape[1]
  sequence = np.zeros((b, length), np.int32)
  weights = np.zeros((b, length), np.int32)
  for row in range(b):
    given = inputs[row][inputs[row] != 0]
    answer = targets[row][targets[row] != 0]
    sequence[row, :given.size + answer.size] = np.concatenate([given, answer])
    weights[row, given.size:given.size + answer.size] = 1
  decoder_inputs = np.zeros_like(sequence)
  decoder_inputs[:, 1:] = sequence[:, :-1]
  return {"decoder_input_tokens": decoder_inputs, "decoder_target_tokens": sequence,
          "decoder_loss_weights": weights}


def target_log_probs(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """logits [b, l, v], targets [b, l] -> log p(target token) [b, l], in float32."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]


def score_batch(model, params: Any, batch: Batch, *,
                length_normalize: bool = False) -> jax.Array:
  """[b] summed (or, length_normalize, mean) target log-probability; 0 for padding rows."""
  logits = model_logits(model, params, batch)                      # [b, l, v]
  weights = batch["decoder_loss_weights"].astype(jnp.float32)      # [b, l]
  total = jnp.sum(target_log_probs(logits, batch["decoder_target_tokens"]) * weights, axis=-1)
  if length_normalize:
    total = total / jnp.maximum(jnp.sum(weights, axis=-1), 1.0)
  return total


def jit_score_batch(model, mesh, *, length_normalize: bool = False
                    ) -> Callable[[Any, Batch], jax.Array]:
  """score_batch compiled like the eval step: parameters and batch stay where they were
  put (the batch split over data x fsdp by the caller), the scores come back replicated
  so every host reads all of them."""
  return jax.jit(lambda params, batch: score_batch(model, params, batch,
                                                   length_normalize=length_normalize),
                 out_shardings=partitioning.replicated(mesh))
