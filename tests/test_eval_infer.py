"""`xlt eval` and `xlt infer` on a real checkpoint and real SeqIO demo tasks."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio

from tasks import demo
from xlt.data import vocabulary
from xlt import checkpoints, cli, decoding, optimizers, partitioning
from xlt.models import TINY, Transformer
from xlt.train_state import create_sharded_state

TASK = "demo_en_addition__what_is"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A run directory with one checkpoint (step 7) of a randomly initialised tiny model."""
  run = tmp_path_factory.mktemp("run")
  mesh = partitioning.make_mesh(partitioning.MeshConfig())
  tx, _ = optimizers.OptimizerConfig().build()
  config = TINY.replace(dtype="float32")
  state, _, _ = create_sharded_state(config, tx, mesh, partitioning.DEFAULT_RULES, seed=5)
  ckpt = checkpoints.Checkpointer(str(run / "checkpoints"))
  ckpt.save(7, state, {"batches_consumed": 7}, config.to_dict(), force=True)
  ckpt.wait()
  ckpt.close()
  params = jax.tree.map(np.asarray, state.params)
  return run, config, params


def _tokenized(split="validation"):
  vocabulary.set_vocabulary(vocabulary.BYTE)
  task = seqio.get_mixture_or_task(TASK)
  ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
  return list(ds.as_numpy_iterator())


def test_eval_loss_matches_direct_computation(run_dir, capsys):
  run, config, params = run_dir
  code = cli.main(["eval", "--gin_file=gin/runs/eval.gin", f"--gin.CHECKPOINT_PATH='{run}'",
                   f"--gin.MIXTURE_OR_TASK_NAME='{TASK}'", "--gin.BATCH_SIZE=64",
                   "--gin.VOCABULARY='byte'", "--gin.EVALUATORS=['teacher_forced']"])
  assert code == 0
  printed = capsys.readouterr().out
  assert TASK in printed and "token_accuracy" in printed
  (folder,) = (run / "eval").glob(f"{TASK}-validation-step7-greedy-*")
  with open(folder / "results.json") as f:
    results = json.load(f)
  assert results["step"] == 7 and results["split"] == "validation"
  assert results["tasks"][TASK]["evaluator"] == "teacher_forced"
  metrics = results["tasks"][TASK]["metrics"]
  assert metrics["examples"] == demo.SPLIT_SIZES["validation"]

  # Independent reference: per-example teacher forcing, numpy log-softmax.
  model = Transformer(config)
  forward = jax.jit(lambda enc, dec: model.apply({"params": params}, enc, dec))
  total_nll, total_correct, total_tokens = 0.0, 0, 0
  for ex in _tokenized():
    targets = ex["targets"].astype(np.int32)
    # Right-padding changes nothing: padded inputs are masked, the decoder is causal.
    enc = np.zeros((1, 40), np.int32)
    enc[0, :len(ex["inputs"])] = ex["inputs"]
    dec = np.zeros((1, 8), np.int32)
    dec[0, 1:len(targets)] = targets[:-1]
    logits = np.asarray(forward(enc, dec))[0, :len(targets)]
    log_probs = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1,
                                       keepdims=True)) - logits.max(-1, keepdims=True)
    total_nll -= float(np.sum(log_probs[np.arange(len(targets)), targets]))
    total_correct += int(np.sum(np.argmax(logits, -1) == targets))
    total_tokens += len(targets)
  assert metrics["target_tokens"] == total_tokens
  np.testing.assert_allclose(metrics["loss"], total_nll / total_tokens, rtol=1e-5)
  np.testing.assert_allclose(metrics["token_accuracy"], 100 * total_correct / total_tokens,
                             rtol=1e-6)


def test_infer_writes_greedy_predictions(run_dir):
  run, config, params = run_dir
  out = run / "preds" / "p.jsonl"
  code = cli.main(["infer", "--gin_file=gin/runs/infer.gin", f"--gin.CHECKPOINT_PATH='{run}'",
                   f"--gin.MIXTURE_OR_TASK_NAME='{TASK}'", f"--gin.OUTPUT_PATH='{out}'",
                   "--gin.MAX_DECODE_LENGTH=6", "--gin.VOCABULARY='byte'"])
  assert code == 0
  with open(out) as f:
    rows = [json.loads(line) for line in f]
  raw = demo.rows("demo_en_addition", "validation")
  assert len(rows) == len(raw)
  assert [r["inputs"] for r in rows] == [f"What is {r['a']} plus {r['b']}?" for r in raw]
  assert [r["targets"] for r in rows] == [str(r["a"] + r["b"]) for r in raw]
  assert not os.path.exists(str(out) + ".tmp")

  model = Transformer(config)
  vocab = seqio.ByteVocabulary()
  for ex, row in list(zip(_tokenized(), rows))[:3]:
    ids = np.asarray(decoding.greedy_decode_without_cache(
        model, params, jnp.asarray(ex["inputs"][None]), 6))[0]
    stop = np.nonzero(ids == decoding.EOS_ID)[0]
    ids = ids[:stop[0]] if stop.size else ids
    assert row["prediction"] == vocab.decode([int(t) for t in ids])
