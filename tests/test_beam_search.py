"""Beam search and sampling with the KV cache, against exhaustive search, teacher-forced
log-probabilities, greedy decoding and the softmax they sample from."""
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import decoding
from xlt.models import TINY, Transformer, scan_layout
from xlt.train_state import boxed_params

CONFIG = TINY.replace(vocab_size=50, dtype="float32", relative_attention_num_buckets=8,
                      relative_attention_max_distance=12)
SMALL_VOCAB = TINY.replace(vocab_size=5, dtype="float32")


def _model(config, seed=3, head_scale=4.0):
  params = nn.meta.unbox(boxed_params(config, jax.random.key(seed)))
  params["decoder"]["lm_head"]["kernel"] = params["decoder"]["lm_head"]["kernel"] * head_scale
  return Transformer(config), params


def _inputs(vocab, rows=4, length=11, seed=7):
  tokens = np.array(jax.random.randint(jax.random.key(seed), (rows, length), 2, vocab))
  tokens[1, 6:] = 0
  tokens[-1, 3:] = 0
  return jnp.asarray(tokens, jnp.int32)


def _sequence_log_prob(model, params, enc, seqs, eos_id):
  """Teacher-forced log p of each row of seqs [n, t] up to and including its first EOS."""
  seqs = np.asarray(seqs)
  dec = np.zeros_like(seqs)
  dec[:, 1:] = seqs[:, :-1]
  logits = np.asarray(model.apply({"params": params}, enc, jnp.asarray(dec)), np.float64)
  logits -= logits.max(-1, keepdims=True)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  out = []
  for row, s in enumerate(seqs):
    ends = np.nonzero(s == eos_id)[0]
    n = ends[0] + 1 if ends.size else len(s)
    out.append(logp[row, np.arange(n), s[:n]].sum())
  return np.array(out)


@pytest.fixture(scope="module")
def model_and_params():
  return _model(CONFIG)


def test_one_beam_is_greedy(model_and_params):
  model, params = model_and_params
  enc = _inputs(CONFIG.vocab_size)
  free = np.asarray(decoding.greedy_decode(model, params, enc, 12, eos_id=-1))
  eos = int(free[0, 2])  # rows end at different steps
  greedy = np.asarray(decoding.greedy_decode(model, params, enc, 12, eos_id=eos))
  beam, scores = decoding.beam_search(model, params, enc, 12, 1, eos_id=eos)
  np.testing.assert_array_equal(np.asarray(beam), greedy)
  assert (greedy == eos).any(axis=1).sum() >= 1
  np.testing.assert_allclose(scores, _sequence_log_prob(model, params, enc, greedy, eos),
                             rtol=1e-5, atol=1e-4)


def test_beam_search_finds_the_exhaustive_argmax():
  """Vocabulary 5, 3 steps: with 25 >= 5**2 beams every prefix is kept, so the result
  must be the best of all 5**3 sequences (those with an early EOS scored up to it)."""
  model, params = _model(SMALL_VOCAB, seed=11, head_scale=1.0)
  enc = _inputs(SMALL_VOCAB.vocab_size, rows=3, length=6, seed=2)
  length, eos = 3, decoding.EOS_ID
  tokens, scores = decoding.beam_search(model, params, enc, length, 25, eos_id=eos)
  every = np.array(list(itertools.product(range(SMALL_VOCAB.vocab_size), repeat=length)))
  for row in range(enc.shape[0]):
    # Sequences equal up to an EOS are one hypothesis; zero what follows it.
    seqs = every.copy()
    for s in seqs:
      ends = np.nonzero(s == eos)[0]
      if ends.size:
        s[ends[0] + 1:] = 0
    seqs = np.unique(seqs, axis=0)
    logp = _sequence_log_prob(model, params, jnp.repeat(enc[row:row + 1], len(seqs), 0), seqs,
                              eos)
    best = int(np.argmax(logp))
    np.testing.assert_array_equal(np.asarray(tokens[row]), seqs[best])
    np.testing.assert_allclose(float(scores[row]), logp[best], rtol=1e-5, atol=1e-5)
    assert logp[best] > np.sort(logp)[-2]  # a unique optimum: the check can fail


def test_scores_are_teacher_forced_log_probs_and_beat_greedy(model_and_params):
  model, params = model_and_params
  enc = _inputs(CONFIG.vocab_size)
  free = np.asarray(decoding.greedy_decode(model, params, enc, 10, eos_id=-1))
  eos = int(free[0, 1])
  tokens, scores = jax.jit(lambda p, x: decoding.beam_search(
      model, p, x, 10, 4, eos_id=eos))(params, enc)
  np.testing.assert_allclose(scores, _sequence_log_prob(model, params, enc, tokens, eos),
                             rtol=1e-5, atol=1e-4)
  greedy = np.asarray(decoding.greedy_decode(model, params, enc, 10, eos_id=eos))
  assert np.all(np.asarray(scores) >= _sequence_log_prob(model, params, enc, greedy, eos) - 1e-4)


def test_length_penalty_prefers_longer_hypotheses(model_and_params):
  model, params = model_and_params
  enc = _inputs(CONFIG.vocab_size)
  free = np.asarray(decoding.greedy_decode(model, params, enc, 10, eos_id=-1))
  eos = int(free[0, 1])
  lengths = []
  for alpha in (0.0, 2.0):
    tokens, _ = decoding.beam_search(model, params, enc, 10, 4, eos_id=eos, length_penalty=alpha)
    lengths.append(np.array([len(decoding.until_eos(np.asarray(t), eos)) for t in tokens]))
  assert np.all(lengths[1] >= lengths[0])


def test_scanned_layers_decode_the_same(model_and_params):
  model, params = model_and_params
  scanned_config = CONFIG.replace(scan_layers=True)
  scanned = scan_layout.to_layout(params, True)
  enc = _inputs(CONFIG.vocab_size)
  for config in (decoding.DecodeConfig("beam", num_beams=3),
                 decoding.DecodeConfig("sample", seed=4)):
    a = decoding.decode(model, params, enc, 8, config)
    b = decoding.decode(Transformer(scanned_config), scanned, enc, 8, config)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sampling_limits_are_greedy(model_and_params):
  model, params = model_and_params
  enc = _inputs(CONFIG.vocab_size)
  greedy = np.asarray(decoding.greedy_decode(model, params, enc, 8))
  for config in (decoding.DecodeConfig("sample", temperature=0.0),
                 decoding.DecodeConfig("sample", top_k=1, seed=9)):
    np.testing.assert_array_equal(np.asarray(decoding.decode(model, params, enc, 8, config)),
                                  greedy)


def test_sampling_is_seeded():
  model, params = _model(CONFIG, head_scale=0.05)  # near-uniform: samples differ
  enc = _inputs(CONFIG.vocab_size)
  draw = lambda seed: np.asarray(decoding.decode(  # noqa: E731
      model, params, enc, 8, decoding.DecodeConfig("sample", seed=seed)))
  np.testing.assert_array_equal(draw(1), draw(1))
  assert (draw(1) != draw(2)).any()


def test_first_sampled_token_follows_the_tempered_softmax():
  """4096 rows share one input: their first tokens are 4096 draws of one distribution.
  Each token's frequency has standard error sqrt(p (1 - p) / n) <= 0.0079; 5 of them
  bound a correct sampler's deviation (a wrong temperature moves p by far more)."""
  model, params = _model(CONFIG, head_scale=0.5)
  n, temperature = 4096, 0.7
  enc = jnp.repeat(_inputs(CONFIG.vocab_size)[:1], n, axis=0)
  tokens = np.asarray(decoding.sample_decode(model, params, enc, 1, jax.random.key(0),
                                             temperature=temperature))[:, 0]
  logits = np.asarray(model.apply({"params": params}, enc[:1], jnp.zeros((1, 1), jnp.int32)),
                      np.float64)[0, 0] / temperature
  p = np.exp(logits - logits.max())
  p /= p.sum()
  freq = np.bincount(tokens, minlength=CONFIG.vocab_size) / n
  bound = 5 * np.sqrt(p * (1 - p) / n) + 1e-3
  assert np.all(np.abs(freq - p) <= bound), np.max(np.abs(freq - p) / bound)
  assert p.max() < 0.5  # a spread distribution, so the test says something


def test_decode_config_errors_name_the_field():
  with pytest.raises(ValueError, match="DecodeConfig.method must be one of greedy, beam, sample"):
    decoding.DecodeConfig("bem")
  with pytest.raises(ValueError, match="DecodeConfig.num_beams"):
    decoding.DecodeConfig("beam", num_beams=0)
  with pytest.raises(ValueError, match="DecodeConfig.temperature"):
    decoding.DecodeConfig("sample", temperature=-1.0)
