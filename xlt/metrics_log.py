"""Where training metrics go: TensorBoard, a JSONL file, a console summary line.

Only process 0 writes; every process may call.
"""
from __future__ import annotations

import json
import os
import time
from typing import Mapping

import jax


class MetricsLogger:
  def __init__(self, model_dir: str, subdir: str = "train"):
    self.enabled = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if self.enabled:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(model_dir, "tensorboard", subdir))
      self._jsonl = open(os.path.join(model_dir, f"{subdir}_metrics.jsonl"), "a")

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    for name, value in metrics.items():
      self._tb.add_scalar(f"{name}", value, step)
    self._jsonl.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
    self._jsonl.flush()

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
