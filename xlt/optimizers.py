"""Optimizers and learning-rate schedules (optax), with T5X's defaults."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from xlt.models import scan_layout


_SCHEDULE_KINDS = ("rsqrt", "constant", "cosine", "linear")
_OPTIMIZERS = ("adafactor", "adamw")


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Learning rate as a function of step.

  kind:
    "rsqrt":    base / sqrt(max(step, warmup_steps)); T5 pre-training (base 1.0, warmup 10k).
                With linear_warmup, it ramps from 0 up to the rsqrt value during warmup.
    "constant": base, after an optional linear warmup (T5 fine-tuning uses 1e-3).
    "cosine":   linear warmup to base, cosine decay to end_value at decay_steps (AdamW runs).
    "linear":   linear warmup to base, linear decay to end_value at decay_steps.
  """

  kind: str = "rsqrt"
  base: float = 1.0
  warmup_steps: int = 10_000
  linear_warmup: bool = False
  decay_steps: int = 0
  end_value: float = 0.0

  def __post_init__(self):
    if self.kind not in _SCHEDULE_KINDS:
      raise ValueError(f"Schedule.kind={self.kind!r}; expected one of {_SCHEDULE_KINDS}")

  def build(self) -> optax.Schedule:
    warm = max(self.warmup_steps, 1)
    if self.kind == "rsqrt":
      def rsqrt(step):
        step = jnp.asarray(step, jnp.float32)
        value = self.base / jnp.sqrt(jnp.maximum(step, warm))
        if self.linear_warmup:
          value = value * jnp.minimum(1.0, step / warm)
        return value
      return rsqrt
    if self.kind == "constant":
      if self.warmup_steps:
        return optax.linear_schedule(0.0, self.base, self.warmup_steps)
      return optax.constant_schedule(self.base)
    if self.kind in ("cosine", "linear"):
      if self.decay_steps <= self.warmup_steps:
        raise ValueError(f"Schedule {self.kind!r}: decay_steps ({self.decay_steps}) must exceed "
                         f"warmup_steps ({self.warmup_steps})")
      if self.kind == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, self.base, self.warmup_steps,
                                                  self.decay_steps, self.end_value)
      return optax.join_schedules(
          [optax.linear_schedule(0.0, self.base, self.warmup_steps),
           optax.linear_schedule(self.base, self.end_value, self.decay_steps - self.warmup_steps)],
          [self.warmup_steps])
    raise ValueError(f"Schedule.kind={self.kind!r}; expected rsqrt, constant, cosine or linear")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """name: "adafactor" (T5X defaults) or "adamw". max_grad_norm <= 0 disables clipping."""

  name: str = "adafactor"
  schedule: Schedule = Schedule()
  max_grad_norm: float = 0.0
  # Adafactor (T5X defaults: factored second moments, decay 0.8, update clipping 1.0).
  decay_rate: float = 0.8
  multiply_by_parameter_scale: bool = True
  clipping_threshold: float = 1.0
  factored: bool = True
  # AdamW.
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0

  def __post_init__(self):
    if self.name not in _OPTIMIZERS:
      raise ValueError(f"OptimizerConfig.name={self.name!r}; expected one of {_OPTIMIZERS}")

  def build(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = self.schedule.build()
    if self.name == "adafactor":
      opt = optax.adafactor(learning_rate=schedule, decay_rate=self.decay_rate,
                            multiply_by_parameter_scale=self.multiply_by_parameter_scale,
                            clipping_threshold=self.clipping_threshold, factored=self.factored)
    elif self.name == "adamw":
      opt = optax.adamw(learning_rate=schedule, b1=self.b1, b2=self.b2, eps=self.eps,
                        weight_decay=self.weight_decay)
    else:
      raise ValueError(f"OptimizerConfig.name={self.name!r}; expected 'adafactor' or 'adamw'")
    opt = per_layer_statistics(opt)
    if self.max_grad_norm > 0:
      opt = optax.chain(optax.clip_by_global_norm(self.max_grad_norm), opt)
    return opt, schedule


def _over_layers(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """`inner` applied to each slice of its leaves' leading (layers) axis independently."""

  def init(params):
    return jax.vmap(inner.init)(params)

  def update(updates, state, params=None):
    if params is None:
      return jax.vmap(lambda u, s: inner.update(u, s))(updates, state)
    return jax.vmap(inner.update)(updates, state, params)

  return optax.GradientTransformation(init, update)


def per_layer_statistics(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """Makes T5Config.scan_layers change nothing in training.

  Scanned stacks store each parameter of all layers as one [layers, ...] array. Adafactor
  computes its factored moments, parameter scale and update clipping per array, so on a
  stacked array they would mix the layers. Here each stack's `layers` subtree gets `inner`
  vmapped over its layer axis, so every statistic is per layer as without scan, and the
  rest of the tree gets `inner` as is. Per-layer trees pass straight through (same state
  as `inner` alone). Global transforms (clip_by_global_norm) belong outside.
  """

  def split(tree):
    stacks = scan_layout.stacked_stacks(tree)
    if not stacks:
      return None

    def label(path, _):
      first, second = (getattr(k, "key", None) for k in (list(path) + [None, None])[:2])
      return first if first in stacks and second == scan_layout.STACKED else "rest"

    transforms = {"rest": inner, **{name: _over_layers(inner) for name in stacks}}
    return optax.multi_transform(transforms, lambda t: jax.tree_util.tree_map_with_path(label, t))

  def init(params):
    both = split(params)
    return inner.init(params) if both is None else both.init(params)

  def update(updates, state, params=None):
    both = split(updates)
    return inner.update(updates, state, params) if both is None else both.update(
        updates, state, params)

  return optax.GradientTransformation(init, update)
