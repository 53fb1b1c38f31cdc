"""HF -> xlt conversion: converted weights must give transformers' logits, to 1e-4.

Tiny random models are built and saved locally; nothing is downloaded.
"""
from __future__ import annotations

import ast
import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: every load here is local

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="HF parity tests need torch (pip install -e .[hf])")
transformers = pytest.importorskip(
    "transformers", reason="HF parity tests need transformers (pip install -e .[hf])")

import jax  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
import sentencepiece as spm  # noqa: E402

from xlt.convert import hf_t5  # noqa: E402
from xlt.models import T5Config, Transformer  # noqa: E402

TOL = 1e-4
# Longer than relative_attention_max_distance (20), so both the log-spaced buckets and the
# last (clipped) bucket are used, in the encoder (bidirectional) and decoder (causal).
ENC_LEN, DEC_LEN = 24, 22


def _tiny(cls, **overrides):
  kw = dict(vocab_size=200, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_layers=2,
            num_decoder_layers=3, relative_attention_num_buckets=8,
            relative_attention_max_distance=20, dropout_rate=0.0, decoder_start_token_id=0)
  kw.update(overrides)
  return cls(**kw)


def _train_spiece(directory) -> str:
  """A ~60-piece sentencepiece model trained on generated text (stands in for mT5's)."""
  rng = np.random.default_rng(0)
  words = ["".join(rng.choice(list("abcdefghijklmnop"), size=rng.integers(2, 7)))
           for _ in range(40)]
  lines = [" ".join(rng.choice(words, size=8)) for _ in range(60)]
  prefix = os.path.join(directory, "sp")
  spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=prefix,
                                 vocab_size=60, minloglevel=2)
  return prefix + ".model"


def _inputs(vocab: int) -> tuple[np.ndarray, np.ndarray]:
  """Encoder ids [2, ENC_LEN] (row 1 padded with 0s at the end) and decoder ids [2, DEC_LEN]."""
  rng = np.random.default_rng(1)
  enc = rng.integers(2, vocab, size=(2, ENC_LEN)).astype(np.int32)
  enc[1, 15:] = 0
  dec = rng.integers(2, vocab, size=(2, DEC_LEN)).astype(np.int32)
  dec[:, 0] = 0  # decoder start token
  return enc, dec


def _hf_logits(model, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    out = model(input_ids=torch.from_numpy(enc).long(),
                attention_mask=torch.from_numpy(enc > 0).long(),
                decoder_input_ids=torch.from_numpy(dec).long())
  return out.logits.float().numpy()


def _restore(out_dir) -> tuple[dict, dict]:
  """(params, model_config) as a trainer would read them from the converted checkpoint."""
  manager = ocp.CheckpointManager(os.fspath(out_dir))
  params = manager.restore(0, args=ocp.args.Composite(params=ocp.args.StandardRestore()))
  model_config = manager.restore(0, args=ocp.args.Composite(model_config=ocp.args.JsonRestore()))
  manager.close()
  return params["params"], dict(model_config["model_config"])


def _xlt_logits(params, config: T5Config, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
  model = Transformer(config.replace(dtype="float32"))
  return np.asarray(jax.jit(lambda p, e, d: model.apply({"params": p}, e, d))(params, enc, dec))


def _check_tree(params, config: T5Config) -> None:
  got = {tuple(k.key for k in path): tuple(leaf.shape)
         for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
  assert got == hf_t5.expected_param_shapes(config)


def _parity(snapshot, out_dir, reference) -> tuple[T5Config, dict, float]:
  config = hf_t5.convert_hf_checkpoint(snapshot, out_dir)
  params, model_config = _restore(out_dir)
  assert model_config == config.to_dict()
  _check_tree(params, config)
  enc, dec = _inputs(config.vocab_size)
  expected = _hf_logits(reference, enc, dec)  # [2, DEC_LEN, vocab]
  diff = float(np.max(np.abs(_xlt_logits(params, config, enc, dec) - expected)))
  print(f"max |logits diff| = {diff:.3g} (max |logit| {np.max(np.abs(expected)):.3g})")
  assert diff <= TOL
  return config, params, diff


@pytest.fixture(scope="module")
def spiece_model(tmp_path_factory) -> str:
  return _train_spiece(tmp_path_factory.mktemp("spiece"))


def _mt5_snapshot(directory, spiece_model: str, layout: str):
  """Saves a tiny random mT5; returns the HF model the snapshot must reproduce.

  layout "released": like google/mt5-* on the hub (tie_word_embeddings false, a separate
  lm_head.weight). "transformers5": as transformers >= 5 saves it (config says tied, the
  head is `shared` and lm_head.weight is left out).
  """
  torch.manual_seed(0)
  model = transformers.MT5ForConditionalGeneration(
      _tiny(transformers.MT5Config, feed_forward_proj="gated-gelu",
            tie_word_embeddings=False)).eval()
  model.save_pretrained(directory)
  with open(os.path.join(directory, "spiece.model"), "wb") as f, open(spiece_model, "rb") as src:
    f.write(src.read())
  if layout == "transformers5":
    return model
  from safetensors.torch import load_file, save_file  # pylint: disable=import-outside-toplevel
  weights_path = os.path.join(directory, "model.safetensors")
  weights = load_file(weights_path)
  weights["lm_head.weight"] = torch.randn_like(weights["shared.weight"])
  save_file(weights, weights_path, metadata={"format": "pt"})
  config_path = os.path.join(directory, "config.json")
  with open(config_path) as f:
    hf_config = json.load(f)
  hf_config.update(tie_word_embeddings=False, transformers_version="4.40.0")
  with open(config_path, "w") as f:
    json.dump(hf_config, f)
  reloaded = transformers.MT5ForConditionalGeneration.from_pretrained(directory).eval()
  assert not torch.equal(reloaded.lm_head.weight, reloaded.shared.weight)  # untied for real
  return reloaded


@pytest.mark.parametrize("layout", ["released", "transformers5"])
def test_mt5_gated_gelu_untied_parity(tmp_path, spiece_model, layout):
  snapshot, out = tmp_path / "hf", tmp_path / "xlt"
  reference = _mt5_snapshot(snapshot, spiece_model, layout)
  config, params, _ = _parity(snapshot, out, reference)
  assert config.feed_forward_proj == "gated-gelu" and not config.tie_word_embeddings
  assert (config.num_encoder_layers, config.num_decoder_layers) == (2, 3)
  head = reference.lm_head.weight.detach().numpy()  # [vocab, d]
  np.testing.assert_array_equal(np.asarray(params["decoder"]["lm_head"]["kernel"]), head.T)
  # The vocabulary travels with the checkpoint, and model.gin rebuilds the config.
  with open(out / "spiece.model", "rb") as a, open(spiece_model, "rb") as b:
    assert a.read() == b.read()
  assert spm.SentencePieceProcessor(model_file=str(out / "spiece.model")).vocab_size() == 60
  bindings = {}
  for line in (out / "model.gin").read_text().splitlines():
    if line and not line.startswith("#"):
      name, value = line.split(" = ")
      bindings[name.removeprefix("T5Config.")] = ast.literal_eval(value)
  assert T5Config(**bindings) == config


def test_t5_relu_tied_pytorch_bin_parity(tmp_path):
  torch.manual_seed(1)
  model = transformers.T5ForConditionalGeneration(
      _tiny(transformers.T5Config, feed_forward_proj="relu", tie_word_embeddings=True)).eval()
  snapshot, out = tmp_path / "hf", tmp_path / "xlt"
  model.save_pretrained(snapshot, safe_serialization=False)
  if not (snapshot / "pytorch_model.bin").exists():  # transformers 5 ignores the flag
    (snapshot / "model.safetensors").unlink()
    torch.save(model.state_dict(), snapshot / "pytorch_model.bin")
  assert sorted(p.name for p in snapshot.glob("*model*")) == ["pytorch_model.bin"]
  with pytest.warns(UserWarning, match="spiece.model"):
    config, params, _ = _parity(snapshot, out, model)
  assert config.feed_forward_proj == "relu" and config.tie_word_embeddings
  assert "lm_head" not in params["decoder"]
  assert not (out / "spiece.model").exists()


def test_config_from_hf_head_semantics():
  base = dict(vocab_size=200, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_layers=2)
  tied = lambda **kw: hf_t5.config_from_hf({**base, **kw}).tie_word_embeddings  # noqa: E731
  assert tied(model_type="t5")  # original T5: no flag means tied and scaled
  assert not tied(model_type="t5", tie_word_embeddings=False)  # T5.1.1
  assert not tied(model_type="mt5", tie_word_embeddings=False)  # released mT5
  assert not tied(model_type="mt5", tie_word_embeddings=True, transformers_version="5.0.0")
  assert not tied(model_type="t5", tie_word_embeddings=True, scale_decoder_outputs=False)
  config = hf_t5.config_from_hf({**base, "model_type": "mt5"}, dtype="float32",
                                param_dtype="bfloat16")
  assert (config.dtype, config.param_dtype, config.num_decoder_layers) == (
      "float32", "bfloat16", 2)
  with pytest.raises(ValueError, match="my/config.json: feed_forward_proj 'gated-silu'"):
    hf_t5.config_from_hf({**base, "feed_forward_proj": "gated-silu"}, source="my/config.json")


def test_bad_state_dict_names_keys():
  torch.manual_seed(0)
  cfg = _tiny(transformers.MT5Config, tie_word_embeddings=False)
  state = {k: v.numpy() for k, v in transformers.MT5ForConditionalGeneration(cfg).state_dict()
           .items()}
  config = hf_t5.config_from_hf(cfg.to_dict())
  hf_t5.convert_state_dict(state, config)  # as saved: fine
  del state["decoder.block.2.layer.1.EncDecAttention.k.weight"]
  state["encoder.block.0.layer.0.SelfAttention.k.bias"] = np.zeros(32, np.float32)
  with pytest.raises(ValueError, match=r"missing HF keys: decoder\.block\.2\.layer\.1\."
                     r"EncDecAttention\.k\.weight; unexpected HF keys: .*k\.bias"):
    hf_t5.convert_state_dict(state, config)


def test_tied_config_rejects_a_different_head():
  torch.manual_seed(0)
  cfg = _tiny(transformers.T5Config, feed_forward_proj="relu")
  state = {k: v.numpy() for k, v in transformers.T5ForConditionalGeneration(cfg).state_dict()
           .items()}
  config = hf_t5.config_from_hf(cfg.to_dict())
  assert config.tie_word_embeddings
  hf_t5.convert_state_dict(state, config)  # lm_head.weight is shared.weight: fine
  state["lm_head.weight"] = state["shared.weight"] + 1.0
  with pytest.raises(ValueError, match="lm_head.weight differs from shared.weight"):
    hf_t5.convert_state_dict(state, config)


def test_safetensors_reader_bfloat16_and_shards(tmp_path):
  from safetensors.torch import save_file  # pylint: disable=import-outside-toplevel
  a = torch.randn(3, 5).to(torch.bfloat16)
  b = torch.randn(4)
  save_file({"a": a}, tmp_path / "model-00001-of-00002.safetensors")
  save_file({"b": b}, tmp_path / "model-00002-of-00002.safetensors")
  index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                          "b": "model-00002-of-00002.safetensors"}}
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
  state = hf_t5.load_hf_state_dict(tmp_path)
  assert state["a"].dtype.name == "bfloat16"
  np.testing.assert_array_equal(state["a"].astype(np.float32), a.float().numpy())
  np.testing.assert_array_equal(state["b"], b.numpy())


def test_missing_weights_names_directory(tmp_path):
  snapshot = tmp_path / "empty_snapshot"
  snapshot.mkdir()
  _tiny(transformers.MT5Config).save_pretrained(snapshot)  # config.json only
  with pytest.raises(FileNotFoundError,
                     match=re.escape(str(snapshot)) + ".*model.safetensors.*pytorch_model.bin"):
    hf_t5.convert_hf_checkpoint(snapshot, tmp_path / "out")
  assert not (tmp_path / "out").exists()  # nothing written


def test_refuses_to_overwrite_checkpoint(tmp_path, spiece_model):
  snapshot, out = tmp_path / "hf", tmp_path / "xlt"
  _mt5_snapshot(snapshot, spiece_model, "transformers5")
  hf_t5.convert_hf_checkpoint(snapshot, out)

  def listing():
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.rglob("*")) if p.is_file()}

  before = listing()
  with pytest.raises(FileExistsError,
                     match=re.escape(f"{out} already holds a converted checkpoint")):
    hf_t5.convert_hf_checkpoint(snapshot, out)
  assert listing() == before
