"""SeqIO -> numpy batches for this host, with a resumable position.

Each host reads its own shard (seqio.ShardInfo) and batch_size / process_count rows.
The position is the number of batches consumed: the pipeline is deterministic for a
given seed, so a restart skips that many batches and sees exactly what an
uninterrupted run would have seen next.
"""
from __future__ import annotations

import os
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import seqio  # noqa: E402
import tensorflow as tf  # noqa: E402

from xlt.data.config import DataConfig  # noqa: E402
from xlt.data.registry import get_task_or_mixture  # noqa: E402

# TensorFlow must never take accelerator memory from JAX.
tf.config.set_visible_devices([], "GPU")


def feature_converter(pack: bool) -> seqio.FeatureConverter:
  return seqio.EncDecFeatureConverter(pack=pack)


def decoder_feature_converter(pack: bool) -> seqio.FeatureConverter:
  """Decoder-only models: inputs then targets in one sequence, the loss on targets only."""
  return seqio.DecoderFeatureConverter(pack=pack, loss_on_targets_only=True)


def get_dataset(config: DataConfig, process_index: int = 0, process_count: int = 1,
                feature_converter_cls=None) -> tf.data.Dataset:
  """The converted (model-feature) dataset of this host's shard, not yet batched."""
  get_task_or_mixture(config.mixture_or_task_name)  # clear error for unknown names
  converter = (feature_converter_cls or feature_converter)(config.pack)
  return seqio.get_dataset(
      config.mixture_or_task_name,
      task_feature_lengths=dict(config.task_feature_lengths),
      dataset_split=config.split,
      shuffle=config.shuffle,
      num_epochs=config.num_epochs,
      feature_converter=converter,
      shard_info=seqio.ShardInfo(index=process_index, num_shards=process_count),
      use_cached=config.use_cached,
      seed=config.seed,
  )


def local_batch_size(config: DataConfig, process_count: int) -> int:
  if config.batch_size % process_count:
    raise ValueError(f"BATCH_SIZE={config.batch_size} is not divisible by the "
                     f"{process_count} processes")
  return config.batch_size // process_count


class BatchIterator:
  """Yields dicts of numpy arrays [local_batch, length]; `state()` is checkpointable."""

  def __init__(self, config: DataConfig, process_index: int = 0, process_count: int = 1,
               batches_consumed: int = 0, drop_remainder: bool = True,
               feature_converter_cls=None):
    self.config = config
    self.batches_consumed = batches_consumed
    ds = get_dataset(config, process_index, process_count, feature_converter_cls)
    ds = ds.batch(local_batch_size(config, process_count), drop_remainder=drop_remainder)
    if batches_consumed:
      ds = ds.skip(batches_consumed)
    self._iterator: Iterator = ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self._iterator)
    self.batches_consumed += 1
    return batch

  def state(self) -> dict[str, int]:
    return {"batches_consumed": int(self.batches_consumed)}
