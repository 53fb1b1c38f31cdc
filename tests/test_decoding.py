"""Greedy decoding with the KV cache equals argmax decoding by full forward passes."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import decoding
from xlt.models import TINY, Transformer
from xlt.train_state import boxed_params

# Few buckets and a short max distance, so a 20-token decode crosses the log-spaced buckets.
CONFIG = TINY.replace(vocab_size=50, relative_attention_num_buckets=8,
                      relative_attention_max_distance=12)


@pytest.fixture(scope="module")
def model_and_params():
  model = Transformer(CONFIG)
  params = nn.meta.unbox(boxed_params(CONFIG, jax.random.key(3)))
  # Sharpen the output head so argmax is far from ties (a tie could flip on round-off).
  params["decoder"]["lm_head"]["kernel"] = params["decoder"]["lm_head"]["kernel"] * 4.0
  return model, params


def _inputs():
  tokens = np.array(jax.random.randint(jax.random.key(7), (4, 11), 2, CONFIG.vocab_size))
  tokens[1, 6:] = 0  # padded row
  tokens[3, 3:] = 0
  return jnp.asarray(tokens, jnp.int32)


def test_kv_cache_decoding_equals_full_forward_argmax(model_and_params):
  model, params = model_and_params
  enc = _inputs()
  cached = jax.jit(lambda p, x: decoding.greedy_decode(model, p, x, 20, eos_id=-1))(params, enc)
  reference = decoding.greedy_decode_without_cache(model, params, enc, 20, eos_id=-1)
  np.testing.assert_array_equal(np.asarray(cached), np.asarray(reference))
  # Not a degenerate constant sequence: the test would be weak otherwise.
  assert len(np.unique(np.asarray(cached))) > 3


def test_decoding_stops_after_eos(model_and_params):
  model, params = model_and_params
  enc = _inputs()
  free = np.asarray(decoding.greedy_decode(model, params, enc, 20, eos_id=-1))
  eos = int(free[0, 2])  # pretend the third generated token of row 0 is EOS
  out = np.asarray(decoding.greedy_decode(model, params, enc, 20, eos_id=eos))
  reference = np.asarray(decoding.greedy_decode_without_cache(model, params, enc, 20, eos_id=eos))
  np.testing.assert_array_equal(out, reference)
  first = int(np.argmax(free[0] == eos))
  assert np.all(out[0, first + 1:] == 0) and out[0, first] == eos
  np.testing.assert_array_equal(out[0, :first + 1], free[0, :first + 1])
