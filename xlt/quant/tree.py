"""Quantizing a float parameter tree into the layout a quantized model config asks for.

The model decides which weights are quantized (T5Config.quant_*: DenseGeneral and Embed
create {codes, scales, zeros} where the pattern matches), so its abstract parameter tree
is the plan: every quantized dict in it is filled from the float weight at the same path,
reshaped [*in, *out] -> [K, N] (stacked layers keep their leading axis; an embedding
[vocab, embed] is transposed to [embed, vocab]); everything else is copied.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from xlt import checkpoints, partitioning
from xlt.quant import rtn

log = logging.getLogger(__name__)

TRANSPOSED = ("embedding",)  # stored [vocab, embed], quantized as [embed, vocab]


def quantize_like(float_params: Any, target: Any, config) -> Any:
  """`float_params` (a float model's tree) in the structure of `target` (abstract params of
  the quantized config)."""

  def walk(source, plan, path: tuple[str, ...]):
    if rtn.is_quantized(plan):
      codes = plan["codes"]
      lead, n = codes.ndim - 2, codes.shape[-1]
      w = jnp.asarray(source)
      if path[-1] in TRANSPOSED:
        w = jnp.swapaxes(w, -1, -2)
      w = w.reshape(w.shape[:lead] + (-1, n))  # [*lead, K, N]
      quantize = lambda m: rtn.quantize(m, config.quant_bits, config.quant_group_size,  # noqa: E731
                                        plan["scales"].dtype)
      for _ in range(lead):
        quantize = jax.vmap(quantize)
      return quantize(w)
    if isinstance(plan, Mapping):
      if not isinstance(source, Mapping):
        raise ValueError(f"parameter {'/'.join(path)}: expected a subtree, found an array")
      missing = sorted(set(plan) - set(source))
      if missing:
        raise ValueError(f"parameter {'/'.join(path + (missing[0],))} is missing from the "
                         "float parameters")
      return {key: walk(source[key], plan[key], path + (key,)) for key in plan}
    return source

  return walk(float_params, target, ())


QUANT_FIELDS = ("quant_bits", "quant_group_size", "quant_pattern")


def restore_params(path: str, config, abstract_params: Any, param_shardings: Any, mesh,
                   rules, boxed_params_fn) -> tuple[Any, int]:
  """checkpoints.restore_params, and a float checkpoint into a quantized model: read it as
  the float model, then quantize on the devices into `param_shardings`.

  `boxed_params_fn(config, rng)` builds the model's boxed parameters (train_state).
  """
  stored = checkpoints.read_model_config(path) or {}
  stored_bits = int(stored.get("quant_bits", 0))
  if not config.quant_bits or stored_bits:
    if stored_bits and any(stored.get(f) != getattr(config, f) for f in QUANT_FIELDS):
      have = {f: stored.get(f) for f in QUANT_FIELDS}
      want = {f: getattr(config, f) for f in QUANT_FIELDS}
      raise checkpoints.IncompatibleCheckpointError(
          f"checkpoint {path} is quantized with {have} but the model config asks for {want}; "
          "quantize the float checkpoint again (xlt quantize) or bind the same quant_* values")
    return checkpoints.restore_params(path, abstract_params, param_shardings)
  float_config = config.replace(quant_bits=0)
  boxed = jax.eval_shape(lambda r: boxed_params_fn(float_config, r), jax.random.key(0))
  float_shardings = partitioning.shardings_from_logical(boxed, mesh, rules)
  float_params, step = checkpoints.restore_params(path, nn.meta.unbox(boxed), float_shardings)
  log.info("quantizing %s to %d bits (group %s) on the devices", path, config.quant_bits,
           config.quant_group_size or "per channel")
  params = jax.jit(lambda f: quantize_like(f, abstract_params, config),
                   out_shardings=param_shardings)(float_params)
  return params, step


def dequantize_like(quantized_params: Any, float_target: Any) -> Any:
  """The inverse layout: every quantized dict back to a float weight shaped like the one
  at the same path of `float_target` (abstract params of the float config), as W_hat."""

  def walk(source, plan, path: tuple[str, ...]):
    if rtn.is_quantized(source):
      lead = source["codes"].ndim - 2
      shape = plan.shape
      if path[-1] in TRANSPOSED:
        shape = shape[:-2] + (shape[-1], shape[-2])
      k = int(np.prod(shape[lead:])) // source["codes"].shape[-1]
      dequantize = lambda q: rtn.dequantize(q, k, plan.dtype)  # noqa: E731
      for _ in range(lead):
        dequantize = jax.vmap(dequantize)
      w = dequantize(source).reshape(shape)
      return jnp.swapaxes(w, -1, -2) if path[-1] in TRANSPOSED else w
    if isinstance(plan, Mapping):
      return {key: walk(source[key], plan[key], path + (key,)) for key in plan}
    return source

  return walk(quantized_params, float_target, ())
