"""`infer()`: decode every example of a task split (greedy, beam or sampling), write JSONL."""
from __future__ import annotations

import json
import logging
import os
import sys

import jax

from xlt import decoding, distributed, partitioning, run_paths
from xlt.data import DataConfig
from xlt.evaluators import EvalContext, decoded_rows
from xlt.loaded_model import load_model
from xlt.models import ModelConfig

log = logging.getLogger(__name__)


class OutputPathError(ValueError):
  """OUTPUT_PATH cannot receive the predictions (a directory, or an existing file)."""


def claim_output(output_path: str, *, overwrite: bool):
  """Checks OUTPUT_PATH before any work: not a directory, not an existing file unless
  overwrite, its folder writable (run_paths.NotWritableError); removes the `<name>.tmp`
  a killed run left. Returns (target, temporary file) as epath.Paths."""
  target = run_paths.resolve(output_path)  # local or gs://
  partial = target.parent / (target.name + ".tmp")
  if target.is_dir():
    example = run_paths.join(output_path, "predictions.jsonl")
    raise OutputPathError(f"OUTPUT_PATH {output_path!r} is a directory; name a file in it, "
                          f"e.g. --gin.OUTPUT_PATH=\"'{example}'\"")
  if target.exists() and not overwrite:
    raise OutputPathError(f"OUTPUT_PATH {output_path!r} already exists; to replace it pass "
                          "--gin.infer.overwrite=True (or choose another --gin.OUTPUT_PATH)")
  run_paths.ensure_writable(str(target.parent), what="the folder of OUTPUT_PATH",
                            flag="--gin.OUTPUT_PATH")
  if partial.exists():
    log.warning("removing %s left by an inference that did not finish", partial)
    partial.unlink()
  return target, partial


def infer(*, checkpoint_path: str, data: DataConfig, output_path: str,
          model: ModelConfig | None = None,
          mesh: partitioning.MeshConfig = partitioning.MeshConfig(),
          max_decode_length: int | None = None,
          decode: decoding.DecodeConfig = decoding.DecodeConfig(),
          overwrite: bool = False) -> int:
  """Writes one line {task, inputs, targets, prediction} per example; returns the count.

  Input length comes from TASK_FEATURE_LENGTHS['inputs'] (or the longest input of the
  split); the decode length from max_decode_length, else TASK_FEATURE_LENGTHS['targets'].
  The lines go to `<OUTPUT_PATH>.tmp`, renamed when all are written; an existing
  OUTPUT_PATH is only replaced with overwrite (checked before any work, like `xlt eval`).
  """
  distributed.initialize_from_env()
  from xlt.data.eval_data import leaf_tasks, max_lengths

  from xlt.data.registry import use_vocabulary
  writer = jax.process_index() == 0  # every host decodes the same batches; one writes
  if writer:
    target, partial = claim_output(output_path, overwrite=overwrite)
  use_vocabulary(data.vocabulary)
  tasks = leaf_tasks(data.mixture_or_task_name)
  loaded = load_model(checkpoint_path, model, mesh)
  written = 0
  matches: dict[str, list[int]] = {}
  compiled: dict = {}
  with (partial.open("w") if writer else open(os.devnull, "w")) as out:
    for task in tasks:
      lengths = dict(data.task_feature_lengths or max_lengths(task, data.split))
      ctx = EvalContext(loaded, data, lengths, decode=decode, compiled=compiled)
      for row, text in decoded_rows(task, ctx, max_decode_length or lengths["targets"]):
        out.write(json.dumps({"task": task.name, **row, "prediction": text},
                             ensure_ascii=False) + "\n")
        written += 1
        counts = matches.setdefault(task.name, [0, 0])
        counts[0] += int(text.strip() == row["targets"].strip())
        counts[1] += 1
  if not writer:
    return written
  partial.replace(target)
  for name, (hits, total) in matches.items():
    print(f"{name:<32} exact match {hits}/{total} = {hits / max(total, 1):.3f}")
  print(f"wrote {written} predictions to {output_path}", file=sys.stderr)
  return written
