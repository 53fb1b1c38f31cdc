"""The pure train and eval steps: (state, batch) -> (state, metrics)."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from xlt import losses, partitioning, trainable
from xlt.models import Llama
from xlt.train_state import TrainState

Batch = Mapping[str, jax.Array]
MODEL_INPUTS = ("encoder_input_tokens", "decoder_input_tokens", "encoder_segment_ids",
                "decoder_segment_ids")


def model_logits(model: nn.Module, params: Any, batch: Batch, *, dropout_rng=None) -> jax.Array:
  """Teacher-forced logits [b, q, vocab]; dropout is on iff a dropout rng is given.

  An encoder-decoder reads MODEL_INPUTS (EncDecFeatureConverter); a decoder-only model the
  DecoderFeatureConverter's decoder_* features (inputs and targets in one sequence)."""
  rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
  if isinstance(model, Llama):
    return model.apply({"params": params}, batch["decoder_input_tokens"],
                       positions=batch.get("decoder_positions"),
                       segment_ids=batch.get("decoder_segment_ids"),
                       enable_dropout=dropout_rng is not None, rngs=rngs)
  kwargs = {k: batch.get(k) for k in MODEL_INPUTS}
  return model.apply({"params": params}, **kwargs, enable_dropout=dropout_rng is not None,
                     rngs=rngs)


def _split_microbatches(batch: Batch, n: int) -> Batch:
  def split(x):
    if x.shape[0] % n:
      raise ValueError(f"batch size {x.shape[0]} is not divisible by num_microbatches={n}")
    return x.reshape((n, x.shape[0] // n) + x.shape[1:])
  return {k: split(v) for k, v in batch.items()}


def make_train_step(model: nn.Module, optimizer: optax.GradientTransformation,
                    schedule: optax.Schedule, loss_config: losses.LossConfig,
                    num_microbatches: int = 1, dropout_seed: int = 0,
                    trainable_params: str | None = None
                    ) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
  """Builds the step. Gradients of several microbatches are summed before the single
  division by the whole batch's loss denominator, so accumulation changes nothing but
  memory. Only the parameters `trainable_params` selects are differentiated and updated
  (xlt.trainable); the frozen ones pass through the step unchanged."""

  def step(state: TrainState, batch: Batch):
    denominator = losses.loss_denominator(batch, loss_config.normalization)
    base_rng = jax.random.fold_in(jax.random.key(dropout_seed), state.step)
    trained, frozen = trainable.split(state.params, trainable_params)

    def microbatch_grads(trained, micro, rng):
      def loss_fn(t):
        logits = model_logits(model, trainable.merge(t, frozen), micro,
                              dropout_rng=rng if model.config.dropout_rate else None)
        total, sums = losses.summed_loss(logits, micro, loss_config)
        return total / denominator, (total, sums)
      grads, (total, sums) = jax.grad(loss_fn, has_aux=True)(trained)
      return grads, total, sums

    if num_microbatches == 1:
      grads, total, sums = microbatch_grads(trained, batch, base_rng)
    else:
      micro = _split_microbatches(batch, num_microbatches)

      def body(carry, xs):
        i, mb = xs
        g, t, s = microbatch_grads(trained, mb, jax.random.fold_in(base_rng, i))
        return jax.tree.map(jnp.add, carry, (g, t, s)), None

      zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(
          microbatch_grads, trained, jax.tree.map(lambda x: x[0], micro), base_rng))
      (grads, total, sums), _ = jax.lax.scan(
          body, zero, (jnp.arange(num_microbatches), micro))

    updates, opt_state = optimizer.update(grads, state.opt_state, trained)
    params = trainable.merge(optax.apply_updates(trained, updates), frozen)
    metrics = {
        "loss": total / denominator,
        "z_loss": sums["z_loss_sum"] / denominator,
        "token_accuracy": sums["correct_tokens"] / jnp.maximum(sums["target_tokens"], 1.0),
        "target_tokens": sums["target_tokens"],
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": schedule(state.step),
    }
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return step


def jit_train_step(step_fn: Callable, state_shardings: Any, mesh) -> Any:
  """The step as train() runs it: the state in its shardings and donated, the batch split
  over data x fsdp, metrics replicated. `xlt compile` and the throughput benchmark compile
  this same object, so what they measure is what trains."""
  return jax.jit(step_fn, in_shardings=(state_shardings, partitioning.batch_sharding(mesh)),
                 out_shardings=(state_shardings, partitioning.replicated(mesh)),
                 donate_argnums=(0,))


def make_eval_step(model: nn.Module) -> Callable[[Any, Batch], dict[str, jax.Array]]:
  """(params, batch) -> sums to be added over a split (loss is per real target token)."""

  def step(params, batch: Batch):
    logits = model_logits(model, params, batch)
    plain = losses.LossConfig(z_loss=0.0, label_smoothing=0.0,
                              normalization=losses.NUM_REAL_TARGET_TOKENS)
    total, sums = losses.summed_loss(logits, batch, plain)
    return {"loss_sum": total, "correct_tokens": sums["correct_tokens"],
            "target_tokens": sums["target_tokens"]}

  return step
