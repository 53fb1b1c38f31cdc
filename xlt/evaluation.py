"""`evaluate()`: every task of a mixture, scored or decoded as it requires, into the
run's eval folder (results.json, results.md, results.png; predictions of generated tasks).

Which evaluator a task gets is `xlt.evaluators.for_task` (rank classification for the
`_score_eval` twins, decoding and the template's metrics otherwise), unless the run names
its evaluators (gin `evaluate.evaluators`). A task whose data is missing is reported as
skipped, with the reason, and the others still run; a task with no examples stops the run
before the model is loaded.

The folder is keyed by the settings that change the numbers (`result_settings`) and written
whole or not at all (`eval_results.claim` / `publish`); a complete one is only replaced
with `overwrite`.
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


class EmptyEvaluationError(ValueError):
  """A task of the mixture has no examples in the split, or no task can run: its scores
  would be meaningless, so nothing is computed or written."""


def decode_settings(decode: decoding.DecodeConfig, batch_size: int) -> dict[str, Any]:
  """The DecodeConfig fields its method uses (num_beams means nothing to greedy). Sampling
  folds the batch index into its rng, so there the batch size changes the numbers too."""
  used = {"greedy": {}, "beam": {"num_beams": decode.num_beams,
                                 "length_penalty": float(decode.length_penalty)},
          "sample": {"temperature": float(decode.temperature), "top_k": decode.top_k,
                     "seed": decode.seed, "batch_size": batch_size}}[decode.method]
  return {"method": decode.method, **used}


def result_settings(data: DataConfig, decode: decoding.DecodeConfig, *,
                    evaluators: Sequence[str] | None, length_normalize: bool,
                    model: ModelConfig | None) -> dict[str, Any]:
  """Everything besides mixture, split and checkpoint step that changes an evaluation's
  numbers: it names the result folder (its hash) and is written into results.json."""
  return {"decode": decode_settings(decode, data.batch_size),
          "task_feature_lengths": (dict(data.task_feature_lengths)
                                   if data.task_feature_lengths else None),
          "vocabulary": data.vocabulary, "evaluators": list(evaluators) if evaluators else None,
          "length_normalize": bool(length_normalize),
          "model": model.to_dict() if model is not None else None}


def default_output_dir(checkpoint_path: str, mixture: str, split: str, step: int,
                       settings: dict[str, Any]) -> str:
  """<MODEL_DIR>/eval/<mixture>-<split>-step<N>-<decode method>-<hash of the settings>
  for a run directory or one of its checkpoints (local or gs://): evaluations that differ
  in anything that changes the numbers never share a folder."""
  parts = str(run_paths.resolve(checkpoint_path)).split("/")
  if "checkpoints" in parts:
    parts = parts[:len(parts) - 1 - parts[::-1].index("checkpoints")]
  name = (f"{mixture.replace('/', '_')}-{split}-step{step}-{settings['decode']['method']}-"
          f"{eval_results.settings_hash(settings)}")
  return "/".join(parts + ["eval", name])


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


def newest_step(checkpoint_path: str) -> int:
  """The step the newest checkpoint folder is named by (a run directory, its checkpoints/
  folder, or one step folder), read from folder names only: nothing is restored."""
  root = run_paths.resolve(checkpoint_path)
  for candidate in (root / "checkpoints", root):
    if candidate.is_dir():
      steps = [int(d.name) for d in candidate.iterdir() if d.name.isdigit() and d.is_dir()]
      if steps:
        return max(steps)
  if root.name.isdigit() and root.is_dir():
    return int(root.name)
  raise FileNotFoundError(
      f"no checkpoint found at {root}: expected a run directory (MODEL_DIR), its "
      "checkpoints/ folder, or one numbered step folder")


def _skip_reason(error: Exception) -> str:
  return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _longest_and_count(task, split: str) -> tuple[dict[str, int], int]:
  """(longest tokenized inputs/targets, number of examples) of a task's split."""
  ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
  longest, examples = {"inputs": 1, "targets": 1}, 0
  for ex in ds.as_numpy_iterator():
    examples += 1
    for k in longest:
      longest[k] = max(longest[k], len(ex[k]))
  return longest, examples


def plan_tasks(tasks, data: DataConfig) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
  """({task: feature lengths} to run, {task: reason} skipped), read before the model is
  loaded. A task whose data is missing is skipped; one with no examples (an empty file,
  every row rejected) is an EmptyEvaluationError, as is a mixture where nothing can run."""
  from xlt.data.sources.base import MissingDataError
  from xlt.data.template_tasks import EmptyTaskError
  lengths: dict[str, dict[str, int]] = {}
  skipped: dict[str, str] = {}
  for task in tasks:
    if data.split not in task.splits:
      skipped[task.name] = f"no split {data.split!r} (has {', '.join(task.splits)})"
      continue
    try:
      longest, examples = _longest_and_count(task, data.split)
    except EmptyTaskError as e:
      raise EmptyEvaluationError(f"task {task.name!r} has no examples to evaluate: "
                                 f"{str(e).splitlines()[0]}") from None
    except (MissingDataError, FileNotFoundError) as e:
      skipped[task.name] = _skip_reason(e)
      log.warning("task %s skipped: %s", task.name, skipped[task.name])
      continue
    if not examples:
      raise EmptyEvaluationError(f"task {task.name!r} has no examples in split "
                                 f"{data.split!r} (empty data); nothing was evaluated or written")
    lengths[task.name] = eval_lengths(longest, data.task_feature_lengths)
  if not lengths:
    reasons = "; ".join(f"{name}: {reason}" for name, reason in sorted(skipped.items()))
    raise EmptyEvaluationError(f"no task of {data.mixture_or_task_name!r} can be evaluated on "
                               f"split {data.split!r} ({reasons})")
  return lengths, skipped


def evaluate(*, checkpoint_path: str, data: DataConfig, model: ModelConfig | None = None,
             output_dir: str | None = None,
             mesh: partitioning.MeshConfig = partitioning.MeshConfig(),
             decode: decoding.DecodeConfig = decoding.DecodeConfig(),
             length_normalize: bool = False,
             evaluators: Sequence[str] | None = None,
             overwrite: bool = False) -> dict[str, dict[str, Any]]:
  """Evaluates every task of `data.mixture_or_task_name` on `data.split`.

  evaluators: None runs what each task requires; a list (of xlt.evaluators.EVALUATORS
  names) runs those on every task. decode: how generated tasks decode (greedy, beam,
  sampling). length_normalize: rank classification by mean instead of summed target
  log-probability (off, as in T0). overwrite: replace an existing complete result (else
  that is an error, raised before any work). Returns {task: metrics} of the tasks that ran.
  """
  distributed.initialize_from_env()
  from xlt.data.eval_data import leaf_tasks
  from xlt.data.registry import use_vocabulary

  unknown = [e for e in evaluators or () if e not in evaluator_lib.EVALUATORS]
  if unknown:
    raise ValueError(f"evaluate.evaluators: unknown {unknown}; available: "
                     f"{sorted(evaluator_lib.EVALUATORS)}")
  settings = result_settings(data, decode, evaluators=evaluators,
                             length_normalize=length_normalize, model=model)
  mixture = data.mixture_or_task_name

  def folder_for(step: int) -> str:
    return output_dir or default_output_dir(checkpoint_path, mixture, data.split, step,
                                            settings)

  writer = jax.process_index() == 0
  # The result folder is checked (and an empty task found) before the model is loaded;
  # `claim` checks again for the step actually restored (older if the newest is unreadable).
  eval_results.check_replaceable(folder_for(newest_step(checkpoint_path)),
                                 overwrite=overwrite)
  use_vocabulary(data.vocabulary)
  tasks = leaf_tasks(mixture)
  lengths, skipped = plan_tasks(tasks, data)
  loaded = load_model(checkpoint_path, model, mesh)
  folder = folder_for(loaded.step)  # another step if the newest could not be read
  tmp = eval_results.claim(folder, overwrite=overwrite) if writer else None
  records: dict[str, dict[str, Any]] = {}
  compiled: dict = {}

  def results() -> dict[str, Any]:
    return eval_results.build(
        checkpoint=checkpoint_path, step=loaded.step, mixture=mixture, split=data.split,
        tasks=records, skipped=skipped,
        config={**settings, "settings_hash": eval_results.settings_hash(settings)})

  runnable = [t for t in tasks if t.name in lengths]
  bar = tqdm(runnable, desc="eval", unit="task", disable=not writer)
  for task in bar:
    bar.set_postfix_str(task.name, refresh=False)
    names = list(evaluators or [evaluator_lib.for_task(task.name)])
    ctx = evaluator_lib.EvalContext(
        loaded, data, lengths[task.name], decode=decode, length_normalize=length_normalize,
        predictions_dir=str(tmp / "predictions") if writer else None, compiled=compiled)
    metrics: dict[str, Any] = {}
    for name in names:
      metrics.update(evaluator_lib.EVALUATORS[name]()(task, ctx))
    info = evaluator_lib.task_info(task.name)
    del info["template_metrics"]
    records[task.name] = {**info, "evaluator": "+".join(names),
                          "primary_metric": eval_results.primary_metric(metrics),
                          "feature_lengths": lengths[task.name], "metrics": metrics}
    if writer:  # after every task, into <folder>.tmp: shows how far a run got
      eval_results.write(str(tmp), results(), chart=False)
  if writer:
    final = results()
    eval_results.write(str(tmp), final)
    eval_results.publish(tmp, folder)
    print(format_table(final), file=sys.stdout)
    print(f"results written to {folder}", file=sys.stderr)
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
