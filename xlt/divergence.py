"""The divergence guard: a diverging run stops before it saves a state that every restart
would resume from.

"Finite" is not enough: at a huge learning rate the parameters reach 1e30 while the
loss of the step that produced them is still finite, and a checkpoint of them poisons
every restart. Two checks, both cheap:
  - each step's loss (already on the host for the metrics) against a running mean;
  - at each save only, the global parameter norm (one jitted reduction) against its
    value at the last checkpoint that passed, or at the start of the process.
A run that fails either stops with exit 1 (xlt.cli) and a message naming the last
checkpoint that passed.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from xlt import run_paths


class DivergedError(RuntimeError):
  """The run diverged; what was saved before is kept (exit 1)."""


@dataclasses.dataclass(frozen=True)
class DivergenceConfig:
  """When a run counts as diverged (gin: DivergenceConfig.<field>).

  loss_spike_factor: a step's loss above this many times the running mean of the losses
    before it (an exponential moving average with `ema_decay`), after `warmup_steps`
    steps of the process, stops the run; 0 turns the check off. Losses below
    `loss_spike_floor` never count: near zero, ratios say nothing.
  max_norm_growth: parameters whose global norm exceeds this many times the norm at the
    last checkpoint that passed (or at the start of the process) are not saved and stop
    the run; 0 turns the check off.
  Non-finite losses and parameters always stop the run.
  """

  loss_spike_factor: float = 10.0
  loss_spike_floor: float = 1.0
  ema_decay: float = 0.98
  warmup_steps: int = 20
  max_norm_growth: float = 10.0

  def __post_init__(self):
    for name in ("loss_spike_factor", "loss_spike_floor", "max_norm_growth"):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"DivergenceConfig.{name} must be a number >= 0 (0: off), "
                         f"got {value!r}")
    if not isinstance(self.ema_decay, (int, float)) or not 0 <= self.ema_decay < 1:
      raise ValueError(f"DivergenceConfig.ema_decay must be in [0, 1), got {self.ema_decay!r}")
    if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
      raise ValueError(f"DivergenceConfig.warmup_steps must be an int >= 0, "
                       f"got {self.warmup_steps!r}")


def params_health(params: Any) -> tuple[jax.Array, jax.Array]:
  """(all finite, global L2 norm) of a tree, to be jitted. The norm is scaled by the
  largest magnitude so that 1e30 parameters give 1e30, not inf (float32 squares)."""
  leaves = [x.astype(jnp.float32) for x in jax.tree.leaves(params)]
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
  largest = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in leaves]))
  scale = jnp.where(jnp.isfinite(largest) & (largest > 0), largest, 1.0)
  squares = sum(jnp.sum(jnp.square(x / scale)) for x in leaves)
  return finite, scale * jnp.sqrt(squares)


class Guard:
  """Judges each step's loss and each state about to be saved; raises DivergedError.

  `kept_step`, the newest checkpoint on disk (None: none), is named in the message: every
  checkpoint this process saved passed the guard."""

  def __init__(self, config: DivergenceConfig, checkpoint_dir: str, start_step: int,
               start_norm: float):
    self.config = config
    self.checkpoint_dir = checkpoint_dir
    self.reference_norm = start_norm
    self.reference_step = start_step
    self._ema: float | None = None
    self._seen = 0

  def check_loss(self, step: int, loss: float, kept_step: int | None) -> None:
    """`loss` is step `step`'s loss, i.e. the loss of the parameters before its update."""
    if not math.isfinite(loss):
      raise DivergedError(f"non-finite loss ({loss}) at step {step}; {self._kept(kept_step)}")
    c = self.config
    if (c.loss_spike_factor and self._ema is not None and self._seen >= c.warmup_steps
        and loss > c.loss_spike_floor and loss > c.loss_spike_factor * self._ema):
      raise DivergedError(
          f"loss spike at step {step}: {loss:.4g} is over {c.loss_spike_factor:g}x its running "
          f"mean {self._ema:.4g} (DivergenceConfig.loss_spike_factor; 0 turns the check off); "
          f"{self._kept(kept_step)}")
    self._seen += 1
    self._ema = loss if self._ema is None else c.ema_decay * self._ema + (1 - c.ema_decay) * loss

  def check_save(self, step: int, finite: bool, norm: float, loss: float | None,
                 kept_step: int | None) -> None:
    """Before saving step `step`'s parameters (`finite`, `norm`: params_health)."""
    if not finite:
      raise DivergedError(
          f"non-finite parameters after the update at step {step} (its loss was {loss}); "
          f"not saved; {self._kept(kept_step)}")
    c = self.config
    limit = c.max_norm_growth * self.reference_norm
    if c.max_norm_growth and self.reference_norm > 0 and norm > limit:
      raise DivergedError(
          f"parameter norm grew over {c.max_norm_growth:g}x, from {self.reference_norm:.4g} at "
          f"step {self.reference_step} to {norm:.4g} at step {step} "
          f"(DivergenceConfig.max_norm_growth; 0 turns the check off); not saved; "
          f"{self._kept(kept_step)}")

  def passed(self, step: int, norm: float) -> None:
    """A state that passed check_save was saved: the next one is compared to it."""
    self.reference_step, self.reference_norm = step, norm

  def _kept(self, kept_step: int | None) -> str:
    if kept_step is None:
      return (f"no checkpoint in {self.checkpoint_dir} passed the divergence guard, none is "
              "kept. Lower the learning rate or check the data")
    path = run_paths.join(self.checkpoint_dir, str(kept_step))
    return (f"the last good checkpoint {path} is kept (step {kept_step}) and a restart resumes "
            "from it. Lower the learning rate or check the data")
