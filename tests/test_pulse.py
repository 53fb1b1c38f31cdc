"""Pulse: the real train() on CPU, tiny model, real SeqIO data, a few steps."""
import json
import os

import numpy as np
import seqio
import tensorflow as tf

from xlt import checkpoints, optimizers, partitioning, trainer
from xlt.data import DataConfig
from xlt.models import TINY

_ROWS = [("translate to Korean: good morning", "좋은 아침"), ("2 plus 3", "5"),
         ("Is the sky blue?", "yes"), ("reverse: a b c", "c b a"),
         ("감정: 정말 좋아요", "긍정"), ("capital of Korea", "Seoul"),
         ("count: x x x", "3"), ("opposite of hot", "cold")]


def _repeated_source(split, shuffle_files, seed=None):
  del split, shuffle_files, seed
  return tf.data.Dataset.from_tensor_slices(
      {"inputs": [r[0] for r in _ROWS], "targets": [r[1] for r in _ROWS]})


if "pulse_repeated" not in seqio.TaskRegistry.names():
  vocab = seqio.ByteVocabulary()
  seqio.TaskRegistry.add(
      "pulse_repeated", source=seqio.FunctionDataSource(_repeated_source, splits=["train"]),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features={k: seqio.Feature(vocab) for k in ("inputs", "targets")})


def train_on_pulse_task(model_dir, model, steps, lr=1e-2, pack=False, **kwargs):
  """train() on the repeated pulse batch, one device, AdamW at a constant `lr` (other
  tests reuse it: PEQA, LLaMA)."""
  return trainer.train(
      model_dir=str(model_dir), model=model,
      data=DataConfig("pulse_repeated", {"inputs": 48, "targets": 16}, batch_size=8,
                      shuffle=False, pack=pack),
      train_steps=steps,
      optimizer=optimizers.OptimizerConfig(
          name="adamw", schedule=optimizers.Schedule(kind="constant", base=lr, warmup_steps=0)),
      mesh=partitioning.MeshConfig(data=1, fsdp=-1, model=1),
      checkpoint=checkpoints.CheckpointConfig(save_every_steps=100, keep=1, async_save=False),
      log_every_steps=100, progress_bar=False, **kwargs)


def logged_losses(model_dir) -> list[float]:
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    return [json.loads(line)["loss"] for line in f]


def test_train_pulse_loss_falls_on_repeated_batch(tmp_path):
  """8 examples, unshuffled, batch 8: every step sees the same batch, so loss must fall."""
  model_dir = str(tmp_path / "run")
  result = trainer.train(
      model_dir=model_dir, model=TINY,
      data=DataConfig("pulse_repeated", {"inputs": 48, "targets": 16}, batch_size=8,
                      shuffle=False, pack=False),
      train_steps=12,
      optimizer=optimizers.OptimizerConfig(
          name="adamw", schedule=optimizers.Schedule(kind="constant", base=1e-2, warmup_steps=0)),
      mesh=partitioning.MeshConfig(data=2, fsdp=-1, model=1),
      checkpoint=checkpoints.CheckpointConfig(save_every_steps=5, keep=2),
      log_every_steps=4, progress_bar=False)
  assert result.final_step == 12
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    logged = [json.loads(line) for line in f]
  assert [m["step"] for m in logged] == list(range(1, 13))
  losses = np.array([m["loss"] for m in logged])
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.5 * losses[0], losses
  for m in logged:
    assert 0.0 <= m["token_accuracy"] <= 1.0 and m["grad_norm"] > 0 and m["tokens_per_second"] > 0
  # Periodic saves at 5 and 10 (keep=2) plus the final one; keep=2 leaves the newest two.
  assert sorted(int(d) for d in os.listdir(os.path.join(model_dir, "checkpoints"))
                if d.isdigit()) == [10, 12]
  events = os.listdir(os.path.join(model_dir, "tensorboard", "train"))
  assert any(e.startswith("events.out.tfevents") for e in events)
