"""Rank classification on hand-built score tables, and the scorer against a direct
per-choice log-probability computation on a real `_score_eval` task."""
import flax.linen as nn
import jax
import numpy as np
import pytest
import seqio

from xlt import partitioning, rank_classification, scoring
from xlt.data import DataConfig, vocabulary
from xlt.data.eval_data import scored_choice_batches
from xlt.models import TINY, Transformer, init_params


def test_picks_highest_score_per_example():
  # Example 0: choices 0,1,2 scored -3, -1, -2 -> predicts 1; gold 1 (right).
  # Example 1: choices -0.5, -4 -> predicts 0; gold 1 (wrong).
  # Example 2: choices -2, -2 (tie) -> lowest position 0; gold 0 (right).
  idx = [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [2, 0], [2, 1]]
  scores = [-3.0, -1.0, -2.0, -0.5, -4.0, -2.0, -2.0]
  correct = [False, True, False, False, True, True, False]
  gold, predicted = rank_classification.predictions(idx, scores, correct)
  assert gold == [1, 1, 0] and predicted == [1, 0, 0]
  out = rank_classification.rank_classification_metrics(idx, scores, correct)
  assert out["examples"] == 3
  assert out["accuracy"] == pytest.approx(100 * 2 / 3)
  # Classes 0 and 1. Class 0: tp 1 (ex 2), fp 1 (ex 1), fn 0 -> F1 = 2/(2+1) = 2/3.
  # Class 1: tp 1 (ex 0), fp 0, fn 1 (ex 1) -> F1 = 2/3. Macro: 2/3.
  assert out["macro_f1"] == pytest.approx(100 * 2 / 3)


def test_row_order_does_not_matter_and_length_normalisation_changes_the_pick():
  idx = np.array([[0, 0], [0, 1]])
  scores = np.array([-3.0, -4.0])   # summed: choice 0
  lengths = np.array([1, 4])        # per token: -3 vs -1 -> choice 1
  correct = np.array([False, True])
  assert rank_classification.predictions(idx, scores, correct)[1] == [0]
  assert rank_classification.predictions(idx[::-1], scores[::-1], correct[::-1])[1] == [0]
  assert rank_classification.predictions(idx, scores, correct, lengths)[1] == [1]


def test_example_without_a_correct_choice_is_an_error():
  with pytest.raises(rank_classification.ScoreTableError, match=r"examples \[0\]"):
    rank_classification.predictions([[0, 0], [0, 1]], [-1.0, -2.0], [False, False])


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_scorer_equals_direct_per_choice_log_probability():
  """Every row of the demo held-out `_score_eval` task, batched and padded by the eval
  pipeline, scores exactly what a one-example numpy log-softmax over the model's logits
  gives for that choice's target tokens (EOS included)."""
  import tasks  # noqa: F401  (registers the demo tasks)
  vocabulary.set_vocabulary(vocabulary.BYTE)
  name = next(n for n in seqio.MixtureRegistry.get("demo_heldout_eval").tasks)
  task = seqio.get_mixture_or_task(name.name)
  config = TINY.replace(dtype="float32")
  model = Transformer(config)
  params = nn.meta.unbox(init_params(config, jax.random.key(3)))
  mesh = partitioning.make_mesh(partitioning.MeshConfig())
  data = DataConfig(mixture_or_task_name=task.name, task_feature_lengths=None,
                    split="validation", batch_size=16, shuffle=False, pack=False, num_epochs=1)
  lengths = {"inputs": 64, "targets": 12}
  scorer = scoring.jit_score_batch(model, mesh)
  rows = list(task.get_dataset(sequence_length=lengths, split="validation", shuffle=False,
                               num_epochs=1).take(20).as_numpy_iterator())
  got = []
  for batch, idx, _ in scored_choice_batches(task, data, lengths):
    got += list(np.asarray(scorer(params, batch))[:len(idx)])
    if len(got) >= len(rows):
      break
  forward = jax.jit(lambda enc, dec: model.apply({"params": params}, enc, dec))
  for row, score in zip(rows, got):
    targets = row["targets"].astype(np.int32)
    enc = row["inputs"][None].astype(np.int32)
    dec = np.concatenate([[0], targets[:-1]])[None].astype(np.int32)
    logp = _log_softmax(np.asarray(forward(enc, dec), np.float64)[0])
    expected = logp[np.arange(len(targets)), targets].sum()
    np.testing.assert_allclose(score, expected, rtol=1e-5, atol=1e-4)
  # A different choice of the same example scores differently (the test can fail).
  assert len(set(np.round(got[:4], 4))) > 1
