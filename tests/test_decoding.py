"""Decoding with the KV cache. Greedy equals argmax decoding by full forward passes; beam
search equals exhaustive search and reports teacher-forced log-probabilities; sampling
reduces to greedy at its limits and otherwise draws from the tempered softmax."""
from __future__ import annotations

import functools
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import decoding
from xlt.models import TINY, Transformer, scan_layout
from xlt.train_state import boxed_params

# Few buckets and a short max distance, so a 20-token decode crosses the log-spaced buckets.
CONFIG = TINY.replace(vocab_size=50, relative_attention_num_buckets=8,
                      relative_attention_max_distance=12)
# For exhaustive search: 6 tokens (EOS among them), 3 steps, 6**3 sequences.
SMALL = CONFIG.replace(vocab_size=6)
LENGTH = 10  # decode length of the beam and sampling tests on CONFIG
N_DRAWS, TEMPERATURE, TOP_K = 4096, 0.6, 4  # the sampling distribution test, on SMALL


@pytest.fixture(scope="module")
def model_and_params():
  model = Transformer(CONFIG)
  params = nn.meta.unbox(boxed_params(CONFIG, jax.random.key(3)))
  # Sharpen the output head so argmax is far from ties (a tie could flip on round-off).
  params["decoder"]["lm_head"]["kernel"] = params["decoder"]["lm_head"]["kernel"] * 4.0
  return model, params


def _inputs(rows=4):
  tokens = np.array(jax.random.randint(jax.random.key(7), (rows, 11), 2, CONFIG.vocab_size))
  tokens[1, 6:] = 0  # padded row
  tokens[3, 3:] = 0
  return jnp.asarray(tokens, jnp.int32)


# Jitted once per model and shape; EOS is an argument so that changing it recompiles nothing.
@functools.partial(jax.jit, static_argnums=0)
def _logits(model, params, enc, dec):
  return model.apply({"params": params}, enc, dec)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _greedy(model, params, enc, length, eos_id):
  return decoding.greedy_decode(model, params, enc, length, eos_id=eos_id)


@functools.partial(jax.jit, static_argnums=(0, 3, 4), static_argnames="length_penalty")
def _beam(model, params, enc, length, num_beams, eos_id, length_penalty=0.0):
  return decoding.beam_search(model, params, enc, length, num_beams,
                              length_penalty=length_penalty, eos_id=eos_id)


@functools.partial(jax.jit, static_argnums=(0, 3), static_argnames=("temperature", "top_k"))
def _sample(model, params, enc, length, rng, eos_id, temperature=1.0, top_k=0):
  return decoding.sample_decode(model, params, enc, length, rng, temperature=temperature,
                                top_k=top_k, eos_id=eos_id)


def _log_prob(model, params, enc, seqs, eos_id):
  """Teacher-forced log p of each row of seqs [n, t] up to and including its first EOS
  (all t tokens if it has none): one full forward pass, no cache."""
  seqs = np.asarray(seqs)
  dec = np.zeros_like(seqs)
  dec[:, 1:] = seqs[:, :-1]  # shifted right behind DECODER_START_ID = 0
  logp = np.asarray(jax.nn.log_softmax(_logits(model, params, enc, jnp.asarray(dec))), np.float64)
  picked = np.take_along_axis(logp, seqs[:, :, None], axis=2)[:, :, 0]  # [n, t]
  return np.array([picked[r, :len(decoding.until_eos(s, eos_id)) + 1].sum()
                   for r, s in enumerate(seqs)])


def _small_vocab(params, head_scale):
  """SMALL's model, with CONFIG's weights cut down to its first 6 tokens."""
  params = jax.tree.map(lambda x: x, params)
  params["shared"]["embedding"] = params["shared"]["embedding"][:SMALL.vocab_size]
  head = params["decoder"]["lm_head"]["kernel"]
  params["decoder"]["lm_head"]["kernel"] = head[:, :SMALL.vocab_size] * head_scale
  return Transformer(SMALL), params


def _small_inputs(rows):
  tokens = np.array(jax.random.randint(jax.random.key(5), (rows, 7), 2, SMALL.vocab_size))
  tokens[1 % rows, 4:] = 0
  return jnp.asarray(tokens, jnp.int32)


def _lengths(seqs, eos_id):
  """Tokens per row including EOS (the full width when a row has none)."""
  return np.array([min(len(decoding.until_eos(s, eos_id)) + 1, len(s)) for s in np.asarray(seqs)])


def test_kv_cache_decoding_equals_full_forward_argmax(model_and_params):
  model, params = model_and_params
  enc = _inputs()
  cached = _greedy(model, params, enc, 20, -1)
  reference = decoding.greedy_decode_without_cache(model, params, enc, 20, eos_id=-1)
  np.testing.assert_array_equal(np.asarray(cached), np.asarray(reference))
  # Not a degenerate constant sequence: the test would be weak otherwise.
  assert len(np.unique(np.asarray(cached))) > 3


def test_decoding_stops_after_eos(model_and_params):
  model, params = model_and_params
  enc = _inputs()
  free = np.asarray(_greedy(model, params, enc, 20, -1))
  eos = int(free[0, 2])  # pretend the third generated token of row 0 is EOS
  out = np.asarray(_greedy(model, params, enc, 20, eos))
  reference = np.asarray(decoding.greedy_decode_without_cache(model, params, enc, 20, eos_id=eos))
  np.testing.assert_array_equal(out, reference)
  first = int(np.argmax(free[0] == eos))
  assert np.all(out[0, first + 1:] == 0) and out[0, first] == eos
  np.testing.assert_array_equal(out[0, :first + 1], free[0, :first + 1])


@pytest.fixture(scope="module")
def greedy_run(model_and_params):
  """(inputs [8, 11], an EOS id that ends rows at different steps, greedy tokens)."""
  model, params = model_and_params
  enc = _inputs(rows=8)
  free = np.asarray(_greedy(model, params, enc, LENGTH, -1))
  eos = int(free[3, 1])  # pretend this frequent token is EOS
  greedy = np.asarray(_greedy(model, params, enc, LENGTH, eos))
  ends = [int(np.argmax(row == eos)) for row in greedy if (row == eos).any()]
  assert len(set(ends)) >= 2 and len(ends) < len(greedy)  # early, later and never
  return enc, eos, greedy


@pytest.fixture(scope="module")
def beam4(model_and_params, greedy_run):
  """Beam search with 4 beams and length penalty 0.6 on greedy_run's inputs."""
  model, params = model_and_params
  enc, eos, _ = greedy_run
  tokens, scores = _beam(model, params, enc, LENGTH, 4, eos, length_penalty=0.6)
  return np.asarray(tokens), np.asarray(scores)


def test_one_beam_is_greedy(model_and_params, greedy_run):
  model, params = model_and_params
  enc, eos, greedy = greedy_run
  tokens, scores = _beam(model, params, enc, LENGTH, 1, eos)
  np.testing.assert_array_equal(np.asarray(tokens), greedy)
  np.testing.assert_allclose(scores, _log_prob(model, params, enc, greedy, eos),
                             rtol=1e-5, atol=1e-5)


def test_beam_scores_are_penalised_teacher_forced_log_probs(model_and_params, greedy_run, beam4):
  model, params = model_and_params
  enc, eos, greedy = greedy_run
  tokens, scores = beam4
  penalty = ((5.0 + _lengths(tokens, eos)) / 6.0) ** 0.6
  np.testing.assert_allclose(scores, _log_prob(model, params, enc, tokens, eos) / penalty,
                             rtol=1e-5, atol=1e-5)
  assert np.all(tokens[np.cumsum(tokens == eos, axis=1) > (tokens == eos)] == 0)  # 0 after EOS
  assert (tokens != greedy).any()  # the search does more than greedy here


def test_beam_search_equals_exhaustive_search(model_and_params):
  """6 tokens, 3 steps: with 36 = 6**2 beams no prefix is ever dropped, so beam search
  must return the most probable of all sequences (those with an EOS scored up to it)."""
  model, params = _small_vocab(model_and_params[1], 0.5)
  vocab, length, eos, rows = SMALL.vocab_size, 3, decoding.EOS_ID, 8
  enc = _small_inputs(rows)
  beam, scores = _beam(model, params, enc, length, vocab ** (length - 1), eos)
  greedy = np.asarray(_greedy(model, params, enc, length, eos))

  # Every distinct output: cut after the first EOS, zeros after it.
  every = {tuple(np.concatenate([decoding.until_eos(np.array(s), eos), [eos], np.zeros(length)])
                 [:length].astype(int)) for s in itertools.product(range(vocab), repeat=length)}
  every = np.array(sorted(every))                                       # [156, 3]
  n = len(every)
  logp = _log_prob(model, params, jnp.repeat(enc, n, axis=0), np.tile(every, (rows, 1)),
                   eos).reshape(rows, n)
  best = np.argmax(logp, axis=1)
  np.testing.assert_array_equal(np.asarray(beam), every[best])
  np.testing.assert_allclose(scores, logp[np.arange(rows), best], rtol=1e-5, atol=1e-5)
  # A unique optimum per row, and optima of every kind: EOS first, EOS later, no EOS.
  assert np.all(np.sort(logp, axis=1)[:, -2] < logp[np.arange(rows), best] - 1e-3)
  eos_steps = {int(np.argmax(s == eos)) if (s == eos).any() else None for s in every[best]}
  assert {0, 1, None} <= eos_steps
  assert (greedy != every[best]).any(axis=1).sum() >= 1  # greedy misses some optima


def test_scanned_layers_search_the_same_beams(model_and_params, beam4, greedy_run):
  model, params = model_and_params
  enc, eos, _ = greedy_run
  scanned = Transformer(CONFIG.replace(scan_layers=True))
  tokens, scores = _beam(scanned, scan_layout.to_layout(params, True), enc, LENGTH, 4, eos,
                         length_penalty=0.6)
  np.testing.assert_array_equal(np.asarray(tokens), beam4[0])
  np.testing.assert_allclose(scores, beam4[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scan_layers", [False, True])
def test_cache_batch_axis_is_found_when_layers_equal_rows(scan_layers):
  """2 decoder layers and 2 rows: shapes alone would not tell the scanned cache's
  [layers, b, ...] axes apart; the axis that grows with the batch does."""
  model = Transformer(CONFIG.replace(scan_layers=scan_layers))
  axes = decoding._cache_batch_axes(model, CONFIG.num_decoder_layers, 5, 4)
  if scan_layers:
    assert axes == {"decoder": {"layers": {"self_attention": {
        "cache_index": None, "cached_key": 1, "cached_value": 1}}}}
  else:
    assert set(axes["decoder"]) == {f"layers_{i}" for i in range(CONFIG.num_decoder_layers)}
    assert all(layer["self_attention"] == {"cache_index": None, "cached_key": 0,
                                           "cached_value": 0}
               for layer in axes["decoder"].values())


@pytest.mark.parametrize("temperature,top_k", [(0.0, 0), (1.0, 1)])
def test_sampling_limits_are_greedy(model_and_params, greedy_run, temperature, top_k):
  model, params = model_and_params
  enc, eos, greedy = greedy_run
  tokens = _sample(model, params, enc, LENGTH, jax.random.key(1), eos, temperature=temperature,
                   top_k=top_k)
  np.testing.assert_array_equal(np.asarray(tokens), greedy)


@pytest.fixture(scope="module")
def first_tokens(model_and_params):
  """(draw(seed) -> first tokens of N_DRAWS rows that share one input, sampled with
  TEMPERATURE and TOP_K from SMALL; the model's first-step logits for that input)."""
  model, params = _small_vocab(model_and_params[1], 0.25)
  enc = jnp.repeat(_small_inputs(1), N_DRAWS, axis=0)
  logits = np.asarray(_logits(model, params, enc[:1], jnp.zeros((1, 1), jnp.int32)),
                      np.float64)[0, 0]

  def draw(seed):
    return np.asarray(_sample(model, params, enc, 1, jax.random.key(seed), decoding.EOS_ID,
                              temperature=TEMPERATURE, top_k=TOP_K))[:, 0]
  return draw, logits


def test_sampling_is_seeded(first_tokens):
  draw, _ = first_tokens
  np.testing.assert_array_equal(draw(1), draw(1))
  assert (draw(1) != draw(2)).mean() > 0.2  # 4096 draws from a spread distribution


def test_first_sampled_token_follows_the_tempered_truncated_softmax(first_tokens):
  """The 4096 rows' first tokens are n = 4096 draws of one distribution, p =
  softmax(logits / T) over the top k tokens. Each token's frequency has standard
  deviation sqrt(p (1 - p) / n); a correct sampler strays 5 of them from p with
  probability ~6e-7 per token (normal approximation, n p >= 80 here), < 4e-6 over all
  6 tokens. A sampler that ignored T or top_k is checked to be 10 of them off."""
  draw, logits = first_tokens

  def softmax(x, k):
    x = np.where(x >= np.sort(x)[-k], x, -np.inf)
    p = np.exp(x - x.max())
    return p / p.sum()

  p = softmax(logits / TEMPERATURE, TOP_K)
  freq = np.bincount(draw(0), minlength=SMALL.vocab_size) / N_DRAWS
  bound = 5 * np.sqrt(p * (1 - p) / N_DRAWS)
  assert np.all(np.abs(freq - p) <= bound), (freq, p)
  assert N_DRAWS * p[p > 0].min() >= 80
  for wrong in (softmax(logits, TOP_K), softmax(logits / TEMPERATURE, SMALL.vocab_size)):
    assert np.any(np.abs(wrong - p) > 2 * bound)


def test_decode_dispatches_on_the_config(monkeypatch):
  calls = []
  monkeypatch.setattr(decoding, "greedy_decode", lambda *a, **kw: calls.append(("greedy", a, kw)))
  monkeypatch.setattr(decoding, "beam_search",
                      lambda *a, **kw: calls.append(("beam", a, kw)) or ("tokens", "scores"))
  monkeypatch.setattr(decoding, "sample_decode", lambda *a, **kw: calls.append(("sample", a, kw)))
  args = ("model", "params", "inputs", 7)
  decoding.decode(*args, decoding.DecodeConfig())
  assert decoding.decode(*args, decoding.DecodeConfig("beam", num_beams=3,
                                                      length_penalty=0.6)) == "tokens"
  decoding.decode(*args, decoding.DecodeConfig("sample", temperature=0.5, top_k=3, seed=11))
  rng = jax.random.key(2)
  decoding.decode(*args, decoding.DecodeConfig("sample"), rng=rng)
  assert [c[0] for c in calls] == ["greedy", "beam", "sample", "sample"]
  assert calls[1][1] == args + (3,) and calls[1][2] == {"length_penalty": 0.6}
  assert calls[2][2] == {"temperature": 0.5, "top_k": 3}
  key_data = jax.random.key_data
  np.testing.assert_array_equal(key_data(calls[2][1][4]), key_data(jax.random.key(11)))
  assert calls[3][1][4] is rng


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "bem"}, "DecodeConfig.method must be one of greedy, beam, sample; got 'bem'"),
    ({"num_beams": 0}, "DecodeConfig.num_beams must be >= 1"),
    ({"num_beams": 4.0}, "DecodeConfig.num_beams must be an int"),
    ({"length_penalty": -0.5}, "DecodeConfig.length_penalty must be >= 0"),
    ({"temperature": -1.0}, "DecodeConfig.temperature must be >= 0"),
    ({"temperature": "hot"}, "DecodeConfig.temperature must be a number"),
    ({"top_k": -1}, "DecodeConfig.top_k must be >= 0"),
    ({"seed": None}, "DecodeConfig.seed must be an int"),
])
def test_decode_config_errors_name_the_field(kwargs, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(")):
    decoding.DecodeConfig(**kwargs)
