"""`xlt convert hf` output works as INITIAL_CHECKPOINT_PATH of a real `xlt train` run."""
import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from xlt import checkpoints, cli
from xlt.convert.hf_t5 import config_from_hf
from xlt.train_state import boxed_params

torch = pytest.importorskip("torch", reason="needs torch (the `hf` extra)")
transformers = pytest.importorskip("transformers", reason="needs transformers (the `hf` extra)")


def test_converted_checkpoint_initialises_training(tmp_path, capsys):
  torch.manual_seed(0)
  hf_config = transformers.MT5Config(
      vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_layers=2,
      num_decoder_layers=2, relative_attention_num_buckets=8, relative_attention_max_distance=20,
      feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0)
  snapshot = tmp_path / "hf"
  transformers.MT5ForConditionalGeneration(hf_config).eval().save_pretrained(snapshot)
  out = tmp_path / "converted"
  assert cli.main(["convert", "hf", str(snapshot), str(out)]) == 0
  assert (out / "model.gin").is_file()

  run = tmp_path / "run"
  # Learning rate 0: after two steps the params must still be exactly the converted ones.
  code = cli.main(["train", "--gin_file=gin/experiments/demo.gin", "--gin_file=gin/local_tiny.gin",
                   f"--gin_file={out / 'model.gin'}", f"--gin.MODEL_DIR='{run}'",
                   f"--gin.INITIAL_CHECKPOINT_PATH='{out}'", "--gin.TRAIN_STEPS=2",
                   "--gin.T5Config.dtype='float32'", "--gin.Schedule.kind='constant'",
                   "--gin.Schedule.base=0.0", "--gin.Schedule.warmup_steps=0"])
  assert code == 0, capsys.readouterr().err
  assert os.path.isdir(run / "checkpoints" / "2")

  with open(snapshot / "config.json") as f:
    config = config_from_hf(json.load(f), dtype="float32")
  abstract = nn.meta.unbox(jax.eval_shape(lambda r: boxed_params(config, r), jax.random.key(0)))
  replicated = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), abstract)
  converted, step0 = checkpoints.restore_params(str(out), abstract, replicated)
  trained, step2 = checkpoints.restore_params(str(run), abstract, replicated)
  assert (step0, step2) == (0, 2)
  for a, b in zip(jax.tree.leaves(converted), jax.tree.leaves(trained)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  hf_embedding = transformers.MT5ForConditionalGeneration.from_pretrained(snapshot).shared.weight
  np.testing.assert_allclose(np.asarray(trained["shared"]["embedding"]),
                             hf_embedding.detach().numpy(), rtol=0, atol=0)
