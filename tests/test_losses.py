"""Token cross-entropy (z-loss, label smoothing) and T5X loss normalisation.

References are written here from the definitions, in float64 numpy.
"""
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import losses

TOL = 1e-5


def _log_softmax(logits):
  logits = np.asarray(logits, np.float64)
  m = logits.max(axis=-1, keepdims=True)
  log_z = m[..., 0] + np.log(np.exp(logits - m).sum(axis=-1))
  return logits - log_z[..., None], log_z


def _reference(logits, targets, z_loss, eps):
  """KL(smoothed target || softmax(logits)) + z_loss * logZ^2, per token."""
  log_p, log_z = _log_softmax(logits)
  vocab = logits.shape[-1]
  q = np.full(log_p.shape, eps / (vocab - 1) if eps else 0.0)
  np.put_along_axis(q, targets[..., None], 1.0 - eps, axis=-1)
  cross_entropy = -np.sum(q * log_p, axis=-1)
  with np.errstate(divide="ignore", invalid="ignore"):
    entropy = -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=-1)
  z = z_loss * log_z**2
  return cross_entropy - entropy + z, z


def _random_logits(seed=0, shape=(3, 5, 17), scale=3.0):
  rng = np.random.RandomState(seed)
  logits = (rng.randn(*shape) * scale).astype(np.float32)
  targets = rng.randint(0, shape[-1], size=shape[:-1]).astype(np.int32)
  return logits, targets


def test_plain_cross_entropy_is_nll():
  """No z-loss, no smoothing: -log softmax(logits)[target]."""
  logits, targets = _random_logits()
  loss, z = losses.token_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), 0.0, 0.0)
  log_p, _ = _log_softmax(logits)
  nll = -np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
  assert loss.shape == targets.shape
  np.testing.assert_allclose(np.asarray(loss), nll, rtol=0, atol=TOL)
  np.testing.assert_array_equal(np.asarray(z), 0.0)


@pytest.mark.parametrize("z_loss", [1e-4, 1e-2])
def test_z_loss_adds_coef_times_log_z_squared(z_loss):
  logits, targets = _random_logits(seed=1)
  logits = logits + 4.0  # logZ well away from 0, so the z term matters
  loss, z = losses.token_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), z_loss, 0.0)
  want_loss, want_z = _reference(logits, targets, z_loss, 0.0)
  np.testing.assert_allclose(np.asarray(z), want_z, rtol=0, atol=TOL)
  np.testing.assert_allclose(np.asarray(loss), want_loss, rtol=0, atol=TOL)
  assert np.all(want_z > 0)


@pytest.mark.parametrize("eps", [0.1, 0.3])
@pytest.mark.parametrize("z_loss", [0.0, 1e-3])
def test_label_smoothing_matches_reference(eps, z_loss):
  """Cross-entropy against the smoothed distribution minus its entropy (plus z-loss)."""
  logits, targets = _random_logits(seed=2)
  loss, z = losses.token_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), z_loss, eps)
  want_loss, want_z = _reference(logits, targets, z_loss, eps)
  np.testing.assert_allclose(np.asarray(loss), want_loss, rtol=0, atol=TOL)
  np.testing.assert_allclose(np.asarray(z), want_z, rtol=0, atol=TOL)


@pytest.mark.parametrize("shift", [0.0, 7.5])
def test_label_smoothing_perfect_prediction_scores_zero(shift):
  """Logits = log(smoothed target) (+ any constant) give loss 0: the entropy is removed."""
  eps, vocab = 0.1, 11
  targets = np.array([[0, 3, 10], [5, 5, 1]], np.int32)
  q = np.full(targets.shape + (vocab,), eps / (vocab - 1))
  np.put_along_axis(q, targets[..., None], 1.0 - eps, axis=-1)
  logits = (np.log(q) + shift).astype(np.float32)
  loss, _ = losses.token_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), 0.0, eps)
  np.testing.assert_allclose(np.asarray(loss), 0.0, rtol=0, atol=TOL)
  # Any other prediction scores strictly more (KL > 0).
  other = logits.copy()
  other[..., 0] += 1.0
  worse, _ = losses.token_cross_entropy(jnp.asarray(other), jnp.asarray(targets), 0.0, eps)
  assert np.all(np.asarray(worse) > 1e-3)


# --- normalisation --------------------------------------------------------------

WEIGHTS = np.array([[1, 1, 1, 0],
                    [1, 0, 0, 0],
                    [0, 0, 0, 0]], np.float32)


def _batch(weights, segments=None):
  batch = {"decoder_loss_weights": jnp.asarray(weights)}
  if segments is not None:
    batch["decoder_segment_ids"] = jnp.asarray(segments, jnp.int32)
  return batch


@pytest.mark.parametrize("mode,expected", [
    (losses.NUM_REAL_TARGET_TOKENS, 4.0),       # 3 + 1 real tokens
    (losses.NUM_TOTAL_TARGET_TOKENS, 12.0),     # 3 rows x 4 positions
    (losses.AVERAGE_PER_SEQUENCE, 2.0),         # two rows carry loss, the third none
    (None, 1.0),                                # plain sum
    (233472.0, 233472.0),                       # a T5X-style constant
])
def test_loss_denominator_unpacked(mode, expected):
  assert float(losses.loss_denominator(_batch(WEIGHTS), mode)) == expected


# Packed rows: 0 is padding. Row 0 holds sequences 1, 2, 3; row 1 holds 1 and 2, but
# sequence 2 of row 1 has no loss weight (e.g. a fully masked target); row 2 is padding.
SEGMENTS = np.array([[1, 1, 2, 2, 2, 3, 0, 0],
                     [1, 1, 1, 2, 2, 0, 0, 0],
                     [0, 0, 0, 0, 0, 0, 0, 0]], np.int32)
PACKED_WEIGHTS = np.array([[1, 1, 1, 1, 1, 1, 0, 0],
                           [1, 1, 1, 0, 0, 0, 0, 0],
                           [0, 0, 0, 0, 0, 0, 0, 0]], np.float32)
PACKED_SEQUENCES = 4  # (row 0: 1, 2, 3) + (row 1: 1)


def test_loss_denominator_packed_counts_sequences():
  batch = _batch(PACKED_WEIGHTS, SEGMENTS)
  assert float(losses.loss_denominator(batch, losses.AVERAGE_PER_SEQUENCE)) == PACKED_SEQUENCES
  assert float(losses.loss_denominator(batch, losses.NUM_REAL_TARGET_TOKENS)) == 9.0
  assert float(losses.loss_denominator(batch, losses.NUM_TOTAL_TARGET_TOKENS)) == 24.0


def test_loss_denominator_packed_same_id_in_different_rows_counts_twice():
  """Segment id 1 in two rows is two sequences."""
  segments = np.array([[1, 1, 0], [1, 0, 0]], np.int32)
  weights = (segments > 0).astype(np.float32)
  assert float(losses.loss_denominator(_batch(weights, segments),
                                       losses.AVERAGE_PER_SEQUENCE)) == 2.0


def test_loss_denominator_empty_batch_is_at_least_one():
  """No real targets must not divide by zero."""
  zeros = np.zeros((2, 3), np.float32)
  for mode in (losses.NUM_REAL_TARGET_TOKENS, losses.AVERAGE_PER_SEQUENCE):
    assert float(losses.loss_denominator(_batch(zeros), mode)) == 1.0
  assert float(losses.loss_denominator(_batch(zeros, np.zeros((2, 3), np.int32)),
                                       losses.AVERAGE_PER_SEQUENCE)) == 1.0


def test_average_per_sequence_weights_unpacked():
  """Each row with loss gets total weight 1, spread evenly on its real tokens."""
  w = np.asarray(losses.token_weights(_batch(WEIGHTS), losses.AVERAGE_PER_SEQUENCE))
  expected = np.array([[1 / 3, 1 / 3, 1 / 3, 0],
                       [1, 0, 0, 0],
                       [0, 0, 0, 0]])
  np.testing.assert_allclose(w, expected, rtol=0, atol=TOL)


def test_average_per_sequence_weights_packed_sum_to_one_per_sequence():
  w = np.asarray(losses.token_weights(_batch(PACKED_WEIGHTS, SEGMENTS),
                                      losses.AVERAGE_PER_SEQUENCE))
  sums = {}
  for row in range(SEGMENTS.shape[0]):
    for seg in np.unique(SEGMENTS[row]):
      if seg == 0:
        continue
      sums[(row, int(seg))] = float(w[row][SEGMENTS[row] == seg].sum())
  assert sums == pytest.approx({(0, 1): 1.0, (0, 2): 1.0, (0, 3): 1.0, (1, 1): 1.0,
                                (1, 2): 0.0}, abs=TOL)
  np.testing.assert_allclose(w[0, :5], [1 / 2, 1 / 2, 1 / 3, 1 / 3, 1 / 3], rtol=0, atol=TOL)
  np.testing.assert_array_equal(w[PACKED_WEIGHTS == 0], 0.0)
  assert w.sum() == pytest.approx(PACKED_SEQUENCES, abs=TOL)


@pytest.mark.parametrize("mode", [losses.NUM_REAL_TARGET_TOKENS, losses.NUM_TOTAL_TARGET_TOKENS,
                                  None, 100.0])
def test_other_modes_keep_loss_weights(mode):
  w = np.asarray(losses.token_weights(_batch(PACKED_WEIGHTS, SEGMENTS), mode))
  np.testing.assert_array_equal(w, PACKED_WEIGHTS)


def test_summed_loss_average_per_sequence_is_mean_of_sequence_means():
  """sum / denominator = mean over sequences of each sequence's mean token loss."""
  logits, targets = _random_logits(seed=3, shape=SEGMENTS.shape + (13,))
  batch = dict(_batch(PACKED_WEIGHTS, SEGMENTS), decoder_target_tokens=jnp.asarray(targets))
  config = losses.LossConfig(z_loss=0.0, normalization=losses.AVERAGE_PER_SEQUENCE)
  total, sums = losses.summed_loss(jnp.asarray(logits), batch, config)
  loss = float(total / losses.loss_denominator(batch, config.normalization))
  per_token, _ = _reference(logits, targets, 0.0, 0.0)
  means = []
  for row in range(SEGMENTS.shape[0]):
    for seg in (1, 2, 3):
      mask = (SEGMENTS[row] == seg) & (PACKED_WEIGHTS[row] > 0)
      if mask.any():
        means.append(per_token[row][mask].mean())
  assert len(means) == PACKED_SEQUENCES
  assert loss == pytest.approx(np.mean(means), abs=TOL)
  assert float(sums["target_tokens"]) == 9.0
  correct = (logits.argmax(-1) == targets) & (PACKED_WEIGHTS > 0)
  assert float(sums["correct_tokens"]) == correct.sum()


def test_summed_loss_real_tokens_is_token_mean():
  logits, targets = _random_logits(seed=4, shape=(3, 4, 9))
  batch = dict(_batch(WEIGHTS), decoder_target_tokens=jnp.asarray(targets))
  config = losses.LossConfig(z_loss=1e-3, label_smoothing=0.1)
  total, sums = losses.summed_loss(jnp.asarray(logits), batch, config)
  per_token, z = _reference(logits, targets, 1e-3, 0.1)
  assert float(total) == pytest.approx((per_token * WEIGHTS).sum(), abs=TOL)
  assert float(sums["z_loss_sum"]) == pytest.approx((z * WEIGHTS).sum(), abs=TOL)


def test_loss_config_rejects_unknown_mode():
  with pytest.raises(ValueError, match="num_real_target_tokenz"):
    losses.LossConfig(normalization="num_real_target_tokenz")


def test_loss_config_accepts_known_modes():
  for mode in (losses.NUM_REAL_TARGET_TOKENS, losses.NUM_TOTAL_TARGET_TOKENS,
               losses.AVERAGE_PER_SEQUENCE, None, 233472.0):
    assert losses.LossConfig(normalization=mode).normalization == mode
