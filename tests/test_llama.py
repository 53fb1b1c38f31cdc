"""LLaMA: HF LlamaForCausalLM parity through the converter, KV-cache decoding, packing,
published sizes, conversion errors. Tiny random models are built locally; nothing is
downloaded."""
from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="HF parity tests need torch (pip install -e .[hf])")
transformers = pytest.importorskip(
    "transformers", reason="HF parity tests need transformers (pip install -e .[hf])")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

from xlt.convert import hf_llama  # noqa: E402
from xlt.convert.hf_t5 import load_hf_state_dict  # noqa: E402
from xlt.models.llama import (LLAMA_SIZES, LLAMA_TINY, Llama, LlamaConfig, init_cache,  # noqa: E402
                              init_params, param_count, segment_positions)

PARITY_TOL = 1e-4  # float32, HF vs xlt
DECODE_TOL = 1e-5  # float32, cached steps vs one full forward


def _hf_snapshot(directory, tie: bool) -> "transformers.LlamaForCausalLM":
  """A tiny random GQA LLaMA saved as safetensors; returns the reference model.

  Weights have std 0.1, not HF's 0.02, so attention is far from uniform: a wrong rotary
  layout or theta then moves the logits by > 1, not by ~1e-3.
  """
  torch.manual_seed(0)
  cfg = transformers.LlamaConfig(
      vocab_size=256, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
      intermediate_size=160, num_hidden_layers=2, rms_norm_eps=1e-5, rope_theta=500000.0,
      initializer_range=0.1, tie_word_embeddings=tie, torch_dtype="float32",
      attn_implementation="eager")
  model = transformers.LlamaForCausalLM(cfg).eval()
  with torch.no_grad():  # HF initialises norms to 1; random scales catch a swapped norm
    for name, p in model.named_parameters():
      if name.endswith("norm.weight"):
        p.uniform_(0.5, 1.5)
  model.save_pretrained(directory, safe_serialization=True)
  return model


def _restore(out_dir) -> tuple[dict, dict]:
  manager = ocp.CheckpointManager(os.fspath(out_dir))
  restored = manager.restore(0, args=ocp.args.Composite(params=ocp.args.StandardRestore(),
                                                        model_config=ocp.args.JsonRestore()))
  manager.close()
  return restored["params"], dict(restored["model_config"])


def _tokens(vocab: int, shape=(2, 17), seed: int = 1) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, vocab, size=shape).astype(np.int32)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_hf_parity(tmp_path, tie):
  snapshot, out = tmp_path / "hf", tmp_path / "xlt"
  reference = _hf_snapshot(snapshot, tie)
  (snapshot / "tokenizer.model").write_bytes(b"stands in for a sentencepiece model")
  assert hf_llama.is_llama_snapshot(snapshot)
  config = hf_llama.convert_hf_checkpoint(snapshot, out)
  assert (out / "tokenizer.model").read_bytes() == (snapshot / "tokenizer.model").read_bytes()
  assert (config.num_kv_heads, config.head_dim, config.rope_theta) == (2, 16, 500000.0)
  assert config.tie_word_embeddings == tie
  params, model_config = _restore(out)
  assert model_config == config.to_dict()
  assert "lm_head" not in params if tie else params["lm_head"]["kernel"].shape == (64, 256)
  assert (out / "model.gin").read_text().count("LlamaConfig.") == len(config.to_dict())

  tokens = _tokens(config.vocab_size)
  with torch.no_grad():
    expected = reference(input_ids=torch.from_numpy(tokens).long()).logits.numpy()
  model = Llama(config.replace(dtype="float32"))
  got = np.asarray(jax.jit(lambda p, t: model.apply({"params": p}, t))(params, tokens))
  diff = float(np.max(np.abs(got - expected)))
  print(f"tie={tie}: max |logits diff| = {diff:.3g} (max |logit| {np.max(np.abs(expected)):.3g})")
  assert got.dtype == np.float32 and diff <= PARITY_TOL


@pytest.fixture(scope="module")
def tiny_params():
  return init_params(LLAMA_TINY, jax.random.key(0))


def test_kv_cache_decode_matches_full_forward(tiny_params):
  model, length = Llama(LLAMA_TINY), 12
  tokens = _tokens(LLAMA_TINY.vocab_size, (2, length))
  full = np.asarray(model.apply({"params": tiny_params}, tokens))  # [2, 12, v]

  @jax.jit
  def step(cache, chunk):
    logits, variables = model.apply({"params": tiny_params, "cache": cache}, chunk, decode=True,
                                    mutable=["cache"])
    return logits, variables["cache"]

  cache = init_cache(LLAMA_TINY, batch_size=2, max_length=length)
  logits, cache = step(cache, tokens[:, :4])  # a prompt prefilled in one call ...
  outputs = [logits]
  for i in range(4, length):  # ... then one token at a time
    logits, cache = step(cache, tokens[:, i:i + 1])
    outputs.append(logits)
  decoded = np.concatenate([np.asarray(o) for o in outputs], axis=1)
  np.testing.assert_allclose(decoded, full, atol=DECODE_TOL, rtol=0)


def test_packed_segments_match_separate_sequences(tiny_params):
  model = Llama(LLAMA_TINY)
  a, b = _tokens(LLAMA_TINY.vocab_size, (1, 7), 2), _tokens(LLAMA_TINY.vocab_size, (1, 6), 3)
  packed = np.zeros((1, 16), np.int32)
  packed[0, :7], packed[0, 7:13] = a[0], b[0]
  segments = np.array([[1] * 7 + [2] * 6 + [0] * 3], np.int32)  # 0: padding
  positions = np.array([list(range(7)) + list(range(6)) + list(range(3))], np.int32)
  np.testing.assert_array_equal(segment_positions(jnp.asarray(segments)), positions)

  got = np.asarray(model.apply({"params": tiny_params}, packed, positions, segments))
  derived = np.asarray(model.apply({"params": tiny_params}, packed, segment_ids=segments))
  alone_a = np.asarray(model.apply({"params": tiny_params}, a))
  alone_b = np.asarray(model.apply({"params": tiny_params}, b))
  np.testing.assert_allclose(got[:, :7], alone_a, atol=DECODE_TOL, rtol=0)
  np.testing.assert_allclose(got[:, 7:13], alone_b, atol=DECODE_TOL, rtol=0)
  np.testing.assert_array_equal(derived, got)


def test_published_sizes():
  assert param_count(LLAMA_SIZES["7b"]) == 6_738_415_616
  assert param_count(LLAMA_SIZES["13b"]) == 13_015_864_320


def test_config_validation():
  with pytest.raises(ValueError, match="num_kv_heads"):
    LlamaConfig(num_heads=32, num_kv_heads=5)
  with pytest.raises(ValueError, match="remat_policy"):
    LLAMA_TINY.replace(remat_policy="sometimes")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
  directory = tmp_path_factory.mktemp("hf_llama")
  _hf_snapshot(directory, tie=False)
  return directory


@pytest.mark.parametrize("change,message", [
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling.*not implemented"),
    ({"model_type": "mistral"}, "model_type 'mistral' is not 'llama'"),
])
def test_unsupported_config_names_config_json(snapshot, tmp_path, change, message):
  path = snapshot / "config.json"
  hf_config = {**json.loads(path.read_text()), **change}
  edited = tmp_path / "hf"
  edited.mkdir()
  (edited / "config.json").write_text(json.dumps(hf_config))
  (edited / "model.safetensors").symlink_to(snapshot / "model.safetensors")
  with pytest.raises(ValueError, match=message) as info:
    hf_llama.convert_hf_checkpoint(edited, tmp_path / "out")
  assert str(edited / "config.json") in str(info.value)
  assert not (tmp_path / "out").exists()  # nothing written


def test_missing_tensor_is_named(snapshot):
  config = hf_llama.config_from_hf(json.loads((snapshot / "config.json").read_text()))
  tensors = load_hf_state_dict(snapshot)
  del tensors["model.layers.1.mlp.up_proj.weight"]
  with pytest.raises(ValueError, match=r"missing HF keys: model\.layers\.1\.mlp\.up_proj\.weight"):
    hf_llama.params_from_hf(tensors, config)
