"""The pure train step (microbatching, learning) and the optimizer/schedule configs."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import synthetic_batch
from xlt import losses
from xlt.models import TINY, Transformer
from xlt.optimizers import OptimizerConfig, Schedule
from xlt.train_state import init_state
from xlt.train_step import make_train_step, model_logits

CONFIG = TINY.replace(vocab_size=256, num_encoder_layers=1, num_decoder_layers=1,
                      dropout_rate=0.0, dtype="float32", param_dtype="float32")
TOL = 1e-5
# Real target tokens per row. Microbatches of 4 take rows in pairs: (8, 8), (1, 2),
# (7, 3), (1, 0) -- very different token and sequence counts per microbatch, and one row
# with no loss at all, so normalising per microbatch would give a different loss.
TARGET_LENGTHS = (8, 8, 1, 2, 7, 3, 1, 0)
INPUT_LENGTHS = (16, 9, 4, 16, 11, 2, 7, 5)


def _batch(seed=0, target_lengths=TARGET_LENGTHS, input_lengths=INPUT_LENGTHS):
  return synthetic_batch(input_lengths, target_lengths, CONFIG.vocab_size, seed=seed)


def _constant(lr):
  return Schedule(kind="constant", base=lr, warmup_steps=0).build()


@functools.lru_cache(maxsize=None)
def _run_sgd_step(mode, num_microbatches):
  """One step of plain SGD (lr 1): the param change is exactly minus the gradient."""
  tx = optax.sgd(1.0)
  state = init_state(CONFIG, tx, jax.random.key(0))
  step = jax.jit(make_train_step(Transformer(CONFIG), tx, _constant(1.0),
                                 losses.LossConfig(normalization=mode), num_microbatches))
  new_state, metrics = step(state, _batch())
  return (jax.device_get(state.params), jax.device_get(new_state.params),
          jax.device_get(metrics))


@pytest.mark.parametrize("mode", [losses.NUM_REAL_TARGET_TOKENS, losses.AVERAGE_PER_SEQUENCE])
def test_microbatches_change_nothing(mode):
  """4 microbatches give the loss, gradient and update of one big batch.

  SGD with lr 1 is used so the compared params are (init - grad): a well-conditioned
  check of the accumulated gradient itself.
  """
  init, params1, metrics1 = _run_sgd_step(mode, 1)
  _, params4, metrics4 = _run_sgd_step(mode, 4)
  for key in ("loss", "z_loss", "token_accuracy", "target_tokens"):
    np.testing.assert_allclose(metrics4[key], metrics1[key], rtol=0, atol=TOL, err_msg=key)
  np.testing.assert_allclose(metrics4["grad_norm"], metrics1["grad_norm"], rtol=TOL, atol=0)
  assert metrics1["target_tokens"] == sum(TARGET_LENGTHS)
  assert metrics1["grad_norm"] > 1e-2
  changed = 0.0
  for (path, a), b, a0 in zip(jax.tree_util.tree_leaves_with_path(params4),
                              jax.tree.leaves(params1), jax.tree.leaves(init)):
    diff = np.max(np.abs(a - b))
    assert diff <= TOL, f"{jax.tree_util.keystr(path)}: max abs diff {diff}"
    changed = max(changed, float(np.max(np.abs(b - a0))))
  assert changed > 1e-3


def _per_token_nll(batch):
  """Per-token NLL [b, l] from the model's logits, computed here with log_softmax."""
  params = init_state(CONFIG, optax.sgd(1.0), jax.random.key(0)).params
  logits = jax.jit(lambda p, b: model_logits(Transformer(CONFIG), p, b))(params, batch)
  log_p = jax.nn.log_softmax(np.asarray(logits, np.float64), axis=-1)
  tgt = batch["decoder_target_tokens"]
  return -np.take_along_axis(np.asarray(log_p), tgt[..., None], axis=-1)[..., 0]


@pytest.mark.parametrize("mode", [losses.NUM_REAL_TARGET_TOKENS, losses.AVERAGE_PER_SEQUENCE])
def test_microbatch_loss_is_whole_batch_normalised(mode):
  """The step's loss uses the whole batch's denominator; a per-microbatch normalisation
  (mean of microbatch means) differs on this batch, so the test above can tell them apart."""
  batch = _batch()
  nll = _per_token_nll(batch)
  w = batch["decoder_loss_weights"]
  _, _, metrics = _run_sgd_step(mode, 4)
  z = metrics["z_loss"]  # (z-loss is part of the loss; checked separately in test_losses)
  if mode == losses.NUM_REAL_TARGET_TOKENS:
    whole = (nll * w).sum() / w.sum()
    parts = [(nll[i:i + 2] * w[i:i + 2]).sum() / max(w[i:i + 2].sum(), 1) for i in (0, 2, 4, 6)]
  else:
    seq_means = [(nll[i] * w[i]).sum() / w[i].sum() for i in range(len(w)) if w[i].sum()]
    whole = np.mean(seq_means)
    parts = []
    for i in (0, 2, 4, 6):
      means = [(nll[j] * w[j]).sum() / w[j].sum() for j in (i, i + 1) if w[j].sum()]
      parts.append(np.mean(means))
  assert metrics["loss"] - z == pytest.approx(whole, abs=TOL)
  # Random-init losses are all near log(vocab), so the gap is small, but far above TOL.
  assert abs(np.mean(parts) - whole) > 100 * TOL


def test_indivisible_microbatches_raise():
  tx = optax.sgd(1.0)
  state = init_state(CONFIG, tx, jax.random.key(0))
  step = make_train_step(Transformer(CONFIG), tx, _constant(1.0), losses.LossConfig(),
                         num_microbatches=3)
  with pytest.raises(ValueError, match="3"):
    jax.jit(step)(state, _batch())


def test_loss_falls_on_a_repeated_batch():
  """30 AdamW steps (lr 1e-2) on one batch must more than halve the loss."""
  tx, schedule = OptimizerConfig(name="adamw", schedule=Schedule(
      kind="constant", base=1e-2, warmup_steps=0)).build()
  state = init_state(CONFIG, tx, jax.random.key(0))
  step = jax.jit(make_train_step(Transformer(CONFIG), tx, schedule, losses.LossConfig()),
                 donate_argnums=(0,))
  batch = _batch(target_lengths=(8, 8, 6, 7, 8, 5, 8, 4))
  history = []
  for _ in range(30):
    state, metrics = step(state, batch)
    history.append(float(metrics["loss"]))
  assert int(state.step) == 30
  assert np.all(np.isfinite(history))
  assert history[-1] < 0.5 * history[0], history
  assert float(metrics["learning_rate"]) == pytest.approx(1e-2, rel=TOL)


# --- schedules ------------------------------------------------------------------

def _values(schedule, steps):
  fn = schedule.build()
  return [float(fn(s)) for s in steps]


def test_rsqrt_schedule():
  """T5: base / sqrt(max(step, warmup)); flat at 1/sqrt(warmup) during warmup."""
  got = _values(Schedule(kind="rsqrt", base=1.0, warmup_steps=10_000), [0, 5000, 10_000, 40_000])
  np.testing.assert_allclose(got, [0.01, 0.01, 0.01, 0.005], rtol=TOL, atol=0)


def test_rsqrt_linear_warmup_ramps():
  got = _values(Schedule(kind="rsqrt", base=1.0, warmup_steps=10_000, linear_warmup=True),
                [0, 2500, 5000, 10_000, 40_000])
  np.testing.assert_allclose(got, [0.0, 0.0025, 0.005, 0.01, 0.005], rtol=TOL, atol=1e-12)


def test_constant_schedule_with_and_without_warmup():
  got = _values(Schedule(kind="constant", base=1e-3, warmup_steps=100), [0, 25, 50, 100, 5000])
  np.testing.assert_allclose(got, [0.0, 2.5e-4, 5e-4, 1e-3, 1e-3], rtol=TOL, atol=1e-12)
  got = _values(Schedule(kind="constant", base=1e-3, warmup_steps=0), [0, 1, 10_000])
  np.testing.assert_allclose(got, [1e-3] * 3, rtol=TOL, atol=0)


def test_cosine_schedule():
  """Linear warmup to base, then half a cosine down to end_value at decay_steps."""
  base, end = 1e-3, 1e-5
  got = _values(Schedule(kind="cosine", base=base, warmup_steps=10, decay_steps=110,
                         end_value=end), [0, 5, 10, 35, 60, 110, 500])
  quarter = end + (base - end) * 0.5 * (1 + np.cos(np.pi * 0.25))
  expected = [0.0, base / 2, base, quarter, end + (base - end) / 2, end, end]
  np.testing.assert_allclose(got, expected, rtol=TOL, atol=1e-12)


def test_linear_schedule():
  got = _values(Schedule(kind="linear", base=1e-3, warmup_steps=10, decay_steps=110,
                         end_value=0.0), [0, 5, 10, 60, 110, 200])
  np.testing.assert_allclose(got, [0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0], rtol=TOL, atol=1e-12)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
@pytest.mark.parametrize("decay_steps", [0, 50, 100])
def test_decay_not_after_warmup_raises(kind, decay_steps):
  with pytest.raises(ValueError, match="decay_steps"):
    Schedule(kind=kind, base=1e-3, warmup_steps=100, decay_steps=decay_steps).build()


def test_unknown_schedule_kind_raises():
  with pytest.raises(ValueError, match="exponential"):
    Schedule(kind="exponential").build()


def test_unknown_optimizer_raises_naming_allowed():
  with pytest.raises(ValueError) as e:
    OptimizerConfig(name="sgd").build()
  for name in ("sgd", "adafactor", "adamw"):
    assert name in str(e.value)


# --- gradient clipping ----------------------------------------------------------

def _grads():
  rng = np.random.RandomState(0)
  return {"a": jnp.asarray(rng.randn(4, 3).astype(np.float32) * 3.0),
          "b": jnp.asarray(rng.randn(5).astype(np.float32))}


def _first_update(opt_config, grads):
  tx, _ = opt_config.build()
  params = jax.tree.map(jnp.ones_like, grads)
  updates, _ = tx.update(grads, tx.init(params), params)
  return updates


# Adam with eps comparable to the clipped gradients, so that its update depends on the
# gradient's scale (with a tiny eps, Adam's first update is ~ lr * sign(g) whatever the
# scale, and clipping would be invisible).
_ADAM = dict(name="adamw", eps=1e-3, schedule=Schedule(kind="constant", base=1.0,
                                                       warmup_steps=0))


def test_clipping_scales_gradients_to_max_norm():
  """clip + adamw == adamw fed the gradient rescaled to global norm max_grad_norm."""
  grads = _grads()
  norm = float(optax.global_norm(grads))
  assert norm > 1.0
  clipped = _first_update(OptimizerConfig(max_grad_norm=1e-3, **_ADAM), grads)
  scaled = jax.tree.map(lambda g: g * (1e-3 / norm), grads)
  reference = _first_update(OptimizerConfig(**_ADAM), scaled)
  unclipped = _first_update(OptimizerConfig(**_ADAM), grads)
  for c, r, u in zip(jax.tree.leaves(clipped), jax.tree.leaves(reference),
                     jax.tree.leaves(unclipped)):
    np.testing.assert_allclose(np.asarray(c), np.asarray(r), rtol=0, atol=TOL)
    assert np.max(np.abs(np.asarray(c) - np.asarray(u))) > 0.1  # clipping did something


def test_clipping_leaves_small_gradients_alone():
  grads = jax.tree.map(lambda g: g * 1e-4, _grads())
  assert float(optax.global_norm(grads)) < 1.0
  clipped = _first_update(OptimizerConfig(max_grad_norm=1.0, **_ADAM), grads)
  plain = _first_update(OptimizerConfig(**_ADAM), grads)
  for c, p in zip(jax.tree.leaves(clipped), jax.tree.leaves(plain)):
    np.testing.assert_allclose(np.asarray(c), np.asarray(p), rtol=0, atol=TOL)


def test_max_grad_norm_zero_disables_clipping():
  tx, _ = OptimizerConfig(max_grad_norm=0.0, **_ADAM).build()
  grads = _grads()
  params = jax.tree.map(jnp.ones_like, grads)
  state = tx.init(params)
  # An unclipped chain has Adam's state at the top level, not (clip_state, adam_state).
  updates, _ = tx.update(grads, state, params)
  reference = optax.adamw(1.0, eps=1e-3, weight_decay=0.0)
  ref_updates, _ = reference.update(grads, reference.init(params), params)
  for u, r in zip(jax.tree.leaves(updates), jax.tree.leaves(ref_updates)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(r), rtol=0, atol=TOL)
