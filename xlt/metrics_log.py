"""Where training metrics go: TensorBoard, a JSONL file, a console summary line.

Only process 0 writes; every process may call. MODEL_DIR may be a bucket (gs://):
tensorboardX writes there itself; the JSONL file is appended to locally and, on a bucket
(whose objects cannot be appended to), rewritten whole at most every `flush_seconds`
and at close, after reading what an earlier (resumed) run left in it.

A resumed run restarts at its checkpoint's step S, so rows an earlier process logged
past S (after that checkpoint, before it was killed) are dropped when the file is first
written: each step appears once. TensorBoard is told the same with `purge_step`.
Nothing is created before the first write: a run that fails before its first step
leaves no metrics behind. The file is strict JSON: a non-finite value is written as
null and its name listed under "nonfinite".
"""
from __future__ import annotations

import json
import logging
import math
import time
from typing import Mapping

import jax

from xlt import run_paths

log = logging.getLogger(__name__)


def strict_record(record: Mapping) -> dict:
  """`record` with NaN/inf floats as None, their names under "nonfinite" (JSON has no NaN)."""
  out, nonfinite = {}, []
  for key, value in record.items():
    if isinstance(value, float) and not math.isfinite(value):
      nonfinite.append(key)
      value = None
    out[key] = value
  if nonfinite:
    out["nonfinite"] = nonfinite
  return out


def rows_up_to(text: str, last_step: int) -> tuple[str, int]:
  """(the lines of `text` whose "step" is at most `last_step`, how many were dropped).

  A last line without its newline (the writer was killed mid-line) is dropped too; a
  line that does not parse is kept as it is (not ours to judge)."""
  kept, dropped = [], 0
  for line in text.splitlines(keepends=True):
    if not line.endswith("\n"):
      dropped += 1
      continue
    try:
      step = json.loads(line).get("step")
    except (ValueError, AttributeError):
      step = None
    if isinstance(step, int) and step > last_step:
      dropped += 1
      continue
    kept.append(line)
  return "".join(kept), dropped


class JsonlLog:
  """Lines of JSON, one per write, kept across restarts of the run up to `resume_step`
  (None: everything is kept)."""

  def __init__(self, path: str, flush_seconds: float = 30.0, resume_step: int | None = None):
    self.path = run_paths.resolve(path)
    self.remote = run_paths.is_url(path)
    self.flush_seconds = flush_seconds
    self.resume_step = resume_step
    self._opened = False

  def _open(self) -> None:
    text = self.path.read_text() if self.path.exists() else ""
    dropped = 0
    if self.resume_step is not None and text:
      kept, dropped = rows_up_to(text, self.resume_step)
      if dropped:
        log.info("%s: dropped %d rows past step %d (logged after that checkpoint, before the "
                 "run stopped); the resumed run logs those steps again", self.path, dropped,
                 self.resume_step)
        text = kept
        if not self.remote:  # rewrite whole, then append: a kill leaves one or the other
          tmp = self.path.parent / (self.path.name + ".tmp")
          tmp.write_text(text)
          tmp.replace(self.path)
    if self.remote:
      self._text = text
      self._last_flush = time.monotonic()
      self._dirty = bool(dropped)  # a truncated file is rewritten at the first flush
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._file = open(self.path, "a")
    self._opened = True

  def write(self, record: Mapping) -> None:
    if not self._opened:
      self._open()
    line = json.dumps(strict_record(record), allow_nan=False) + "\n"
    if not self.remote:
      self._file.write(line)
      self._file.flush()
      return
    self._text += line
    self._dirty = True
    if time.monotonic() - self._last_flush >= self.flush_seconds:
      self.flush()

  def flush(self) -> None:
    if self._opened and self.remote and self._dirty:
      self.path.write_text(self._text)
      self._dirty = False
      self._last_flush = time.monotonic()

  def close(self) -> None:
    if not self._opened:
      return
    if self.remote:
      self.flush()
    else:
      self._file.close()


class MetricsLogger:
  """`resume_step`: the step the run starts from; what an earlier process logged past it
  is dropped (JSONL) or hidden (TensorBoard's purge_step)."""

  def __init__(self, model_dir: str, subdir: str = "train", resume_step: int | None = None):
    self.enabled = jax.process_index() == 0
    self.model_dir = model_dir
    self.subdir = subdir
    self.resume_step = resume_step
    self._tb = None
    self._jsonl = None

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    if self._tb is None:  # opened at the first write: a run that fails earlier writes nothing
      from tensorboardX import SummaryWriter
      purge = None if self.resume_step is None else self.resume_step + 1
      self._tb = SummaryWriter(run_paths.join(self.model_dir, "tensorboard", self.subdir),
                               purge_step=purge)
      self._jsonl = JsonlLog(run_paths.join(self.model_dir, f"{self.subdir}_metrics.jsonl"),
                             resume_step=self.resume_step)
    for name, value in metrics.items():
      self._tb.add_scalar(f"{name}", value, step)
    self._jsonl.write({"step": step, "time": time.time(), **metrics})

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._jsonl.close()


def summary_line(step: int, total: int, metrics: Mapping[str, float]) -> str:
  """One line a person can scan: where the run is and how it is doing."""
  return (f"step {step}/{total} | loss {metrics['loss']:.4f} | "
          f"acc {metrics['token_accuracy']:.3f} | lr {metrics['learning_rate']:.2e} | "
          f"grad_norm {metrics['grad_norm']:.3f} | {metrics['tokens_per_second']:.0f} tok/s | "
          f"{metrics['step_time']*1000:.0f} ms/step")
