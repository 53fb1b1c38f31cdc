"""`evaluate()`: run evaluators over every task of a mixture, write JSON per task.

An evaluator is a class with a `name` and `__call__(task, ctx) -> dict[str, float]`,
listed in EVALUATORS and chosen per run (gin: `evaluate.evaluators`). Teacher-forced
loss and token accuracy are here; rank classification and generation metrics register
beside them.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from tqdm import tqdm

from xlt import distributed, partitioning, run_paths
from xlt.data import DataConfig
from xlt.loaded_model import LoadedModel, load_model
from xlt.models import T5Config
from xlt.train_step import make_eval_step

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalContext:
  loaded: LoadedModel
  data: DataConfig
  lengths: Mapping[str, int]
  compiled: dict = dataclasses.field(default_factory=dict)  # shared by all tasks of a run

  def jitted(self, key: str, build: Callable[[], Callable]) -> Callable:
    """One jitted function per key for the whole run, so tasks of equal shapes reuse
    its compilation."""
    if key not in self.compiled:
      self.compiled[key] = build()
    return self.compiled[key]


class TeacherForcedLoss:
  """Mean per-token loss and token accuracy of the targets given the inputs."""

  name = "teacher_forced"

  def __call__(self, task, ctx: EvalContext) -> dict[str, float]:
    from xlt.data.eval_data import model_feature_batches
    lm = ctx.loaded
    batch_sharding = partitioning.batch_sharding(lm.mesh)
    step = ctx.jitted("teacher_forced", lambda: jax.jit(
        make_eval_step(lm.model), out_shardings=partitioning.replicated(lm.mesh)))
    totals = {"loss_sum": 0.0, "correct_tokens": 0.0, "target_tokens": 0.0}
    examples = 0
    for batch, real in model_feature_batches(task, ctx.data, ctx.lengths):
      arrays = {k: jax.device_put(v, batch_sharding) for k, v in batch.items()}
      with partitioning.activation_rules(lm.mesh, lm.rules):
        sums = jax.device_get(step(lm.params, arrays))
      for k in totals:
        totals[k] += float(sums[k])
      examples += real
    tokens = max(totals["target_tokens"], 1.0)
    return {"loss": totals["loss_sum"] / tokens, "token_accuracy": totals["correct_tokens"] / tokens,
            "target_tokens": int(totals["target_tokens"]), "examples": examples}


EVALUATORS: dict[str, Callable[[], Any]] = {TeacherForcedLoss.name: TeacherForcedLoss}


def default_output_dir(checkpoint_path: str) -> str:
  """<MODEL_DIR>/eval for a run directory or one of its checkpoints (local or gs://)."""
  parts = str(run_paths.resolve(checkpoint_path)).split("/")
  if "checkpoints" in parts:
    parts = parts[:len(parts) - 1 - parts[::-1].index("checkpoints")]
  return "/".join(parts + ["eval"])


def evaluate(*, checkpoint_path: str, data: DataConfig, model: T5Config | None = None,
             output_dir: str | None = None,
             mesh: partitioning.MeshConfig = partitioning.MeshConfig(),
             evaluators: Sequence[str] = ("teacher_forced",)) -> dict[str, dict[str, float]]:
  """Evaluates every task of `data.mixture_or_task_name` on `data.split`.

  Writes <output_dir>/<task>.json per task (default output_dir: the run's eval/ folder)
  and prints a table. Returns {task: metrics}.
  """
  distributed.initialize_from_env()
  from xlt.data.eval_data import leaf_tasks, max_lengths

  unknown = [e for e in evaluators if e not in EVALUATORS]
  if unknown:
    raise ValueError(f"evaluate.evaluators: unknown {unknown}; available: {sorted(EVALUATORS)}")
  from xlt.data.registry import use_vocabulary
  use_vocabulary(data.vocabulary)
  tasks = leaf_tasks(data.mixture_or_task_name)
  loaded = load_model(checkpoint_path, model, mesh)
  output_dir = output_dir or default_output_dir(checkpoint_path)
  if jax.process_index() == 0:
    run_paths.resolve(output_dir).mkdir(parents=True, exist_ok=True)
  results: dict[str, dict[str, float]] = {}
  compiled: dict = {}
  for task in tqdm(tasks, desc="eval", unit="task", disable=jax.process_index() != 0):
    if data.split not in task.splits:
      log.warning("task %s has no split %r (has %s): skipped", task.name, data.split, task.splits)
      continue
    lengths = dict(data.task_feature_lengths or max_lengths(task, data.split))
    ctx = EvalContext(loaded, data, lengths, compiled)
    metrics: dict[str, float] = {}
    for name in evaluators:
      metrics.update(EVALUATORS[name]()(task, ctx))
    results[task.name] = metrics
    if jax.process_index() == 0:
      record = {"task": task.name, "split": data.split, "checkpoint": checkpoint_path,
                "step": loaded.step, "feature_lengths": lengths, "metrics": metrics}
      (run_paths.resolve(output_dir) / f"{task.name}.json").write_text(
          json.dumps(record, indent=2, ensure_ascii=False))
  if jax.process_index() == 0:
    print(format_table(results, loaded.step), file=sys.stdout)
    print(f"results written to {output_dir}", file=sys.stderr)
  return results


def format_table(results: Mapping[str, Mapping[str, float]], step: int) -> str:
  columns = sorted({k for m in results.values() for k in m if k != "examples"})
  header = ["task", "examples"] + columns
  rows = [[name, str(m.get("examples", ""))] +
          [f"{m[c]:.4f}" if isinstance(m.get(c), float) else str(m.get(c, "")) for c in columns]
          for name, m in results.items()]
  if results:  # unweighted mean over tasks, of the float metrics only
    rows.append(["mean", ""] + [
        f"{np.mean([m[c] for m in results.values()]):.4f}"
        if all(isinstance(m.get(c), float) for m in results.values()) else "" for c in columns])
  widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
  line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
  out = [f"evaluation at step {step}", line(header), line(["-" * w for w in widths])]
  return "\n".join(out + [line(r) for r in rows])
