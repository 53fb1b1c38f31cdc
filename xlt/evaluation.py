"""`evaluate()`: every task of a mixture, scored or decoded as it requires, into the
run's eval folder (results.json, results.md, results.png; predictions of generated tasks).

Which evaluator a task gets is `xlt.evaluators.for_task` (rank classification for the
`_score_eval` twins, decoding and the template's metrics otherwise), unless the run names
its evaluators (gin `evaluate.evaluators`). A task whose data is missing is reported as
skipped, with the reason, and the others still run.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Sequence

import jax
from tqdm import tqdm

from xlt import decoding, distributed, eval_results, partitioning, run_paths
from xlt import evaluators as evaluator_lib
from xlt.data import DataConfig
from xlt.loaded_model import load_model
from xlt.models import ModelConfig

log = logging.getLogger(__name__)


def default_output_dir(checkpoint_path: str, mixture: str, split: str, step: int) -> str:
  """<MODEL_DIR>/eval/<mixture>-<split>-step<N> for a run directory or one of its
  checkpoints (local or gs://), so evaluations of other mixtures, splits or steps are
  never overwritten."""
  parts = str(run_paths.resolve(checkpoint_path)).split("/")
  if "checkpoints" in parts:
    parts = parts[:len(parts) - 1 - parts[::-1].index("checkpoints")]
  return "/".join(parts + ["eval", f"{mixture.replace('/', '_')}-{split}-step{step}"])


def eval_lengths(longest: dict[str, int], cap: dict[str, int] | None) -> dict[str, int]:
  """Each feature's longest example rounded up to a power of two (so tasks of similar
  lengths share one compilation), at most TASK_FEATURE_LENGTHS (inputs are truncated
  there, as in training). Answer choices are short: scoring them at the full target
  length would waste most of the decoder."""
  out = {}
  for key, n in longest.items():
    rounded = max(8, 1 << (max(n, 1) - 1).bit_length())
    out[key] = min(rounded, cap[key]) if cap and key in cap else rounded
  return out


def _skip_reason(error: Exception) -> str:
  return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def evaluate(*, checkpoint_path: str, data: DataConfig, model: ModelConfig | None = None,
             output_dir: str | None = None,
             mesh: partitioning.MeshConfig = partitioning.MeshConfig(),
             decode: decoding.DecodeConfig = decoding.DecodeConfig(),
             length_normalize: bool = False,
             evaluators: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
  """Evaluates every task of `data.mixture_or_task_name` on `data.split`.

  evaluators: None runs what each task requires; a list (of xlt.evaluators.EVALUATORS
  names) runs those on every task. decode: how generated tasks decode (greedy, beam,
  sampling). length_normalize: rank classification by mean instead of summed target
  log-probability (off, as in T0). Returns {task: metrics} of the tasks that ran.
  """
  distributed.initialize_from_env()
  from xlt.data.eval_data import leaf_tasks, max_lengths
  from xlt.data.registry import use_vocabulary
  from xlt.data.sources.base import MissingDataError
  from xlt.data.template_tasks import EmptyTaskError

  unknown = [e for e in evaluators or () if e not in evaluator_lib.EVALUATORS]
  if unknown:
    raise ValueError(f"evaluate.evaluators: unknown {unknown}; available: "
                     f"{sorted(evaluator_lib.EVALUATORS)}")
  use_vocabulary(data.vocabulary)
  tasks = leaf_tasks(data.mixture_or_task_name)
  loaded = load_model(checkpoint_path, model, mesh)
  output_dir = output_dir or default_output_dir(
      checkpoint_path, data.mixture_or_task_name, data.split, loaded.step)
  writer = jax.process_index() == 0
  records: dict[str, dict[str, Any]] = {}
  skipped: dict[str, str] = {}
  compiled: dict = {}

  def results() -> dict[str, Any]:
    return eval_results.build(
        checkpoint=checkpoint_path, step=loaded.step, mixture=data.mixture_or_task_name,
        split=data.split, tasks=records, skipped=skipped)

  bar = tqdm(tasks, desc="eval", unit="task", disable=not writer)
  for task in bar:
    bar.set_postfix_str(task.name, refresh=False)
    if data.split not in task.splits:
      skipped[task.name] = f"no split {data.split!r} (has {', '.join(task.splits)})"
      continue
    names = list(evaluators or [evaluator_lib.for_task(task.name)])
    try:
      lengths = eval_lengths(max_lengths(task, data.split), data.task_feature_lengths)
      ctx = evaluator_lib.EvalContext(
          loaded, data, lengths, decode=decode, length_normalize=length_normalize,
          predictions_dir=run_paths.join(output_dir, "predictions"), compiled=compiled)
      metrics: dict[str, Any] = {}
      for name in names:
        metrics.update(evaluator_lib.EVALUATORS[name]()(task, ctx))
    except (MissingDataError, EmptyTaskError, FileNotFoundError) as e:
      skipped[task.name] = _skip_reason(e)
      log.warning("task %s skipped: %s", task.name, skipped[task.name])
      continue
    info = evaluator_lib.task_info(task.name)
    del info["template_metrics"]
    records[task.name] = {**info, "evaluator": "+".join(names),
                          "primary_metric": eval_results.primary_metric(metrics),
                          "feature_lengths": lengths, "metrics": metrics}
    if writer:  # after every task: an interrupted run keeps what it finished
      eval_results.write(output_dir, results(), chart=False)
  if writer:
    final = results()
    eval_results.write(output_dir, final)
    print(format_table(final), file=sys.stdout)
    print(f"results written to {output_dir}", file=sys.stderr)
  return {name: r["metrics"] for name, r in records.items()}


def format_table(results: dict[str, Any]) -> str:
  """Console summary: one line per task with its primary metric, then the averages."""
  rows = [["task", "evaluator", "examples", "metric", "value"]]
  for name, r in sorted(results["tasks"].items()):
    metric = r["primary_metric"] or ""
    value = r["metrics"].get(metric)
    rows.append([name, r["evaluator"], str(r["metrics"].get("examples", "")), metric,
                 f"{value:.2f}" if isinstance(value, float) else ""])
  for metric, s in results["summary"].items():
    rows.append(["macro / micro average", "", str(s["examples"]), metric,
                 f"{s['macro']:.2f} / {s['micro']:.2f}"])
  for name, reason in sorted(results["skipped"].items()):
    rows.append([name, "skipped", "", "", reason])
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
  out = [f"evaluation of {results['mixture']} ({results['split']}) at step {results['step']}",
         line(rows[0]), line(["-" * w for w in widths])]
  return "\n".join(out + [line(r) for r in rows[1:]])
