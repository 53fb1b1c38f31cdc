"""Where training metrics go: TensorBoard, a JSONL file, a console summary line.

Only process 0 writes; every process may call. MODEL_DIR may be a bucket (gs://):
tensorboardX writes there itself; the JSONL file is appended to locally and, on a bucket
(whose objects cannot be appended to), rewritten whole at most every `flush_seconds`
and at close, after reading what an earlier (resumed) run left in it.
"""
from __future__ import annotations

import json
import time
from typing import Mapping

import jax

from xlt import run_paths


class JsonlLog:
  """Lines of JSON, one per write, kept across restarts of the run."""

  def __init__(self, path: str, flush_seconds: float = 30.0):
    self.path = run_paths.resolve(path)
    self.remote = run_paths.is_url(path)
    self.flush_seconds = flush_seconds
    if self.remote:
      self._text = self.path.read_text() if self.path.exists() else ""
      self._last_flush = time.monotonic()
      self._dirty = False
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._file = open(self.path, "a")

  def write(self, record: Mapping) -> None:
    line = json.dumps(dict(record)) + "\n"
    if not self.remote:
      self._file.write(line)
      self._file.flush()
      return
    self._text += line
    self._dirty = True
    if time.monotonic() - self._last_flush >= self.flush_seconds:
      self.flush()

  def flush(self) -> None:
    if self.remote and self._dirty:
      self.path.write_text(self._text)
      self._dirty = False
      self._last_flush = time.monotonic()

  def close(self) -> None:
    if self.remote:
      self.flush()
    else:
      self._file.close()


class MetricsLogger:
  def __init__(self, model_dir: str, subdir: str = "train"):
    self.enabled = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if self.enabled:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(run_paths.join(model_dir, "tensorboard", subdir))
      self._jsonl = JsonlLog(run_paths.join(model_dir, f"{subdir}_metrics.jsonl"))

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    for name, value in metrics.items():
      self._tb.add_scalar(f"{name}", value, step)
    self._jsonl.write({"step": step, "time": time.time(), **metrics})

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


def summary_line(step: int, total: int, metrics: Mapping[str, float]) -> str:
  """One line a person can scan: where the run is and how it is doing."""
  return (f"step {step}/{total} | loss {metrics['loss']:.4f} | "
          f"acc {metrics['token_accuracy']:.3f} | lr {metrics['learning_rate']:.2e} | "
          f"grad_norm {metrics['grad_norm']:.3f} | {metrics['tokens_per_second']:.0f} tok/s | "
          f"{metrics['step_time']*1000:.0f} ms/step")
