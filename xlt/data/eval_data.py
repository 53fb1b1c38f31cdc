"""Per-task, finite, unshuffled batches for evaluation and inference."""
from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np
import seqio

from xlt.data.config import DataConfig
from xlt.data.pipeline import decoder_feature_converter, feature_converter
from xlt.data.registry import get_task_or_mixture
from xlt.scoring import decoder_features, enc_dec_features


def leaf_tasks(name: str) -> list[seqio.Task]:
  """The tasks of a mixture (recursively), or the task itself."""
  item = get_task_or_mixture(name)
  if isinstance(item, seqio.Mixture):
    return sorted(item.tasks, key=lambda t: t.name)
  return [item]


def max_lengths(task: seqio.Task, split: str) -> dict[str, int]:
  """Longest tokenized inputs/targets of a split (used when no lengths are given)."""
  ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
  longest = {"inputs": 1, "targets": 1}
  for ex in ds.as_numpy_iterator():
    for k in longest:
      longest[k] = max(longest[k], len(ex[k]))
  return longest


def _pad_rows(batch: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
  """Zero rows up to a fixed batch size (zero rows carry no loss and are dropped later)."""
  have = next(iter(batch.values())).shape[0]
  if have == rows:
    return batch
  return {k: np.concatenate([v, np.zeros((rows - have,) + v.shape[1:], v.dtype)])
          for k, v in batch.items()}


def model_feature_batches(task: seqio.Task, config: DataConfig, lengths: Mapping[str, int],
                          decoder_only: bool = False) -> Iterator[tuple[dict, int]]:
  """(model-feature batch padded to batch_size, number of real rows), one pass."""
  converter = decoder_feature_converter if decoder_only else feature_converter
  ds = seqio.get_dataset(task.name, task_feature_lengths=dict(lengths),
                         dataset_split=config.split, shuffle=False, num_epochs=1,
                         feature_converter=converter(pack=False),
                         use_cached=config.use_cached)
  for batch in ds.batch(config.batch_size).as_numpy_iterator():
    real = next(iter(batch.values())).shape[0]
    yield _pad_rows(batch, config.batch_size), real


def text_batches(task: seqio.Task, config: DataConfig,
                 input_length: int) -> Iterator[tuple[dict, list[dict]]]:
  """(encoder ids [batch_size, input_length], the rows' texts) for decoding."""
  ds = task.get_dataset(sequence_length={"inputs": input_length, "targets": None},
                        split=config.split, shuffle=False, num_epochs=1,
                        use_cached=config.use_cached)
  ds = ds.map(lambda ex: {"inputs": ex["inputs"][:input_length],
                          "inputs_pretokenized": ex.get("inputs_pretokenized", ""),
                          "targets_pretokenized": ex.get("targets_pretokenized", "")})
  ds = ds.padded_batch(config.batch_size, padded_shapes={
      "inputs": [input_length], "inputs_pretokenized": [], "targets_pretokenized": []})
  for batch in ds.as_numpy_iterator():
    real = batch["inputs"].shape[0]
    rows = [{"inputs": batch["inputs_pretokenized"][i].decode("utf-8"),
             "targets": batch["targets_pretokenized"][i].decode("utf-8")} for i in range(real)]
    yield _pad_rows({"encoder_input_tokens": batch["inputs"].astype(np.int32)},
                    config.batch_size), rows


def scored_choice_batches(task: seqio.Task, config: DataConfig, lengths: Mapping[str, int],
                          decoder_only: bool = False
                          ) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
  """For a `_score_eval` task: (model-feature batch padded to batch_size, idx [real, 2],
  is_correct [real]), one pass. Inputs and targets are trimmed to `lengths` (EOS kept)."""
  ds = task.get_dataset(sequence_length=dict(lengths), split=config.split, shuffle=False,
                        num_epochs=1, use_cached=config.use_cached)
  keys = ("inputs", "targets", "idx", "is_correct")
  ds = ds.map(lambda ex: {k: ex[k] for k in keys})
  ds = ds.padded_batch(config.batch_size, padded_shapes={
      "inputs": [lengths["inputs"]], "targets": [lengths["targets"]], "idx": [2],
      "is_correct": []})
  for batch in ds.as_numpy_iterator():
    features = (decoder_features if decoder_only else enc_dec_features)(batch["inputs"],
                                                                        batch["targets"])
    yield _pad_rows(features, config.batch_size), batch["idx"], batch["is_correct"]
