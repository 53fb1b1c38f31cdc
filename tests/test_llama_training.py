"""The LLaMA decoder trains, scores and decodes like the T5 model: SeqIO tasks through
DecoderFeatureConverter (loss on targets only), rank-classification features equal to the
training ones, batched prompt decoding equal to decoding each row alone, `xlt convert hf`
dispatch, and PEQA on LLaMA."""
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from test_pulse import logged_losses, train_on_pulse_task
from conftest import REPO_ROOT, subprocess_env
from xlt import checkpoints, lm_decoding, partitioning, scoring, trainer
from xlt.data import DataConfig
from xlt.data.pipeline import decoder_feature_converter
from xlt.decoding import EOS_ID, DecodeConfig, decode
from xlt.models import LLAMA_TINY, Llama, build, config_from_dict, is_decoder_only
from xlt.models.llama import init_params
from xlt.train_state import boxed_params

TINY_BYTES = LLAMA_TINY.replace(vocab_size=384)  # the byte vocabulary of the pulse task


def test_score_features_equal_the_training_converter():
  """What rank classification scores is what training put the loss on."""
  inputs, targets = [5, 6, 7, 1], [9, 1]
  ds = tf.data.Dataset.from_tensors({"inputs": tf.constant(inputs, tf.int32),
                                     "targets": tf.constant(targets, tf.int32)})
  converted = next(decoder_feature_converter(pack=False)(ds, {"inputs": 6, "targets": 3})
                   .as_numpy_iterator())
  padded_inputs = np.array([inputs + [0, 0]], np.int32)
  padded_targets = np.array([targets + [0]], np.int32)
  ours = scoring.decoder_features(padded_inputs, padded_targets)
  for key in ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights"):
    np.testing.assert_array_equal(ours[key][0], converted[key], err_msg=key)
  assert ours["decoder_loss_weights"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0]


def test_batched_prompts_decode_as_each_row_alone():
  """Right-aligned prompts with padding masked in the cache == one row at a time, uncached."""
  config = LLAMA_TINY
  params = init_params(config, jax.random.key(0))
  params = jax.tree.map(lambda x: x * 4.0 if x.ndim > 1 else x, params)  # peaked predictions
  model = Llama(config)
  inputs = np.zeros((3, 7), np.int32)
  inputs[0, :7] = [11, 12, 13, 14, 15, 16, EOS_ID]
  inputs[1, :3] = [40, 41, EOS_ID]
  inputs[2, :1] = [EOS_ID]
  got = jax.jit(lambda p, x: decode(model, p, x, 6, DecodeConfig(method="greedy")))(params, inputs)
  want = lm_decoding.greedy_without_cache(model, params, inputs, 6, EOS_ID)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert len({tuple(r) for r in np.asarray(got).tolist()}) > 1  # rows really differ
  with pytest.raises(ValueError, match="beam.*decoder-only"):
    decode(model, params, inputs, 6, DecodeConfig(method="beam", num_beams=2))


@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
def test_llama_trains_on_a_seqio_task(tmp_path, pack):
  result = train_on_pulse_task(tmp_path / "run", TINY_BYTES, steps=12, pack=pack)
  assert result.final_step == 12
  losses = logged_losses(tmp_path / "run")
  assert losses[-1] < 0.5 * losses[0], losses
  stored = checkpoints.read_model_config(str(tmp_path / "run"))
  assert config_from_dict(stored) == TINY_BYTES and is_decoder_only(config_from_dict(stored))


def test_peqa_on_llama_keeps_codes_and_moves_scales(tmp_path):
  from flax import traverse_util

  from xlt.loaded_model import load_model
  qconfig = TINY_BYTES.replace(quant_bits=4, quant_group_size=32)
  train_on_pulse_task(tmp_path / "peqa", qconfig, steps=8, trainable_params=".*/scales")
  losses = logged_losses(tmp_path / "peqa")
  assert losses[-1] < 0.9 * losses[0], losses
  tuned = traverse_util.flatten_dict(load_model(str(tmp_path / "peqa")).params)
  start = traverse_util.flatten_dict(jax.device_get(jax.jit(
      lambda r: nn.meta.unbox(boxed_params(qconfig, r)))(jax.random.key(0))))
  for path, before in start.items():  # train() initialised from seed 0, like this
    if path[-1] == "scales":
      assert not np.array_equal(np.asarray(tuned[path]), np.asarray(before)), path
    else:
      np.testing.assert_array_equal(np.asarray(tuned[path]), np.asarray(before),
                                    err_msg="/".join(path))


def test_evaluate_scores_and_decodes_a_llama_run(tmp_path):
  """Train on the demo mixture, then rank-classify its held-out tasks and decode one."""
  from xlt.evaluation import evaluate
  run = str(tmp_path / "run")
  trainer.train(
      model_dir=run, model=TINY_BYTES,
      data=DataConfig("demo_mix", {"inputs": 128, "targets": 16}, batch_size=8,
                      vocabulary="byte"),
      train_steps=4, mesh=partitioning.MeshConfig(data=1, fsdp=-1, model=1),
      checkpoint=checkpoints.CheckpointConfig(async_save=False), progress_bar=False)
  results = {}
  for mixture in ("demo_heldout_eval", "demo_en_addition__what_is"):
    results.update(evaluate(checkpoint_path=run, data=DataConfig(
        mixture, None, split="validation", batch_size=64, shuffle=False, pack=False,
        num_epochs=1, vocabulary="byte")))
  ranked = [m for m in results.values() if "choices_per_example" in m]
  generated = results["demo_en_addition__what_is"]
  assert ranked and all(m["examples"] > 0 and 0 <= m["accuracy"] <= 100 for m in ranked)
  assert generated["examples"] == 200 and "exact_match" in generated
  assert (tmp_path / "run" / "eval").is_dir()


def test_xlt_convert_hf_dispatches_llama_snapshots(tmp_path):
  transformers = pytest.importorskip("transformers")
  cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=32, num_attention_heads=2,
                                 num_key_value_heads=1, intermediate_size=64,
                                 num_hidden_layers=1)
  transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path / "hf", safe_serialization=True)
  proc = subprocess.run([sys.executable, "-m", "xlt", "convert", "hf", str(tmp_path / "hf"),
                         str(tmp_path / "xlt")], cwd=REPO_ROOT, env=subprocess_env(),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "LlamaConfig.num_kv_heads = 1" in (tmp_path / "xlt" / "model.gin").read_text()
  from xlt.loaded_model import load_model
  loaded = load_model(str(tmp_path / "xlt"))
  assert isinstance(loaded.model, Llama) and build(loaded.config).config.num_kv_heads == 1
  logits = loaded.model.apply({"params": loaded.params}, jnp.ones((1, 5), jnp.int32))
  assert logits.shape == (1, 5, 96)
